"""The Encoder interface every backend implements, and the errors an encoder may raise to its callers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np

from service.errors import BadGateway, InvalidRequest, ServiceError, Unavailable
from service.model.model_dir import ModelDir
from service.vectors import l2_normalize as l2_normalize  # what an encoder's callers scale its rows with

Channel = Literal["in0", "in1"]
Rows = Sequence[Sequence[int]]
MAX_SEQ_LEN = 5000  # Object2Vec's bound on enc*_max_seq_len and infer_max_seqlens
INVOKE_ENDPOINT_MAX_BYTES = 6 * 2**20
"""SageMaker InvokeEndpoint's fixed payload limit (6 MiB, request and answer alike): the SageMaker encoder cuts its
batches under it, and `o2v serve --sagemaker` takes /invocations bodies up to it, as a real endpoint would."""


class EncoderError(ServiceError):
    """A failure of the model backend, answered to the caller as it is (its branch of service/errors.py)."""


class BackendUnavailable(EncoderError, Unavailable):
    """The backend could not answer (throttled, down, timed out) after its own retries."""

    type = "backend_unavailable"


class Overloaded(EncoderError, Unavailable):
    """The micro-batcher's queue is full; refusing at once keeps memory bounded and tells the client to back off."""

    type = "overloaded"


class BadBackendResponse(EncoderError, BadGateway):
    """The backend answered, but not in the documented shape: retrying will not help."""


class NoScorer(EncoderError, InvalidRequest):
    """Pair scores were asked of a model directory without scorer.onnx."""


class Encoder(ABC):
    """Token ids (or texts) → float32 embeddings [n, dim], not normalised, in the order given.

    Ids follow Object2Vec: `in0` rows go to encoder 0 and `in1` rows to encoder 1 (the same network unless the
    model has its own enc1). `score_ids` is Object2Vec's pair mode: in0 and in1 rows → scores [n, K], K=1 for
    regression, K=num_classes probabilities for softmax. Methods block; callers run them off the event loop.
    """

    backend: str

    def __init__(self, model: ModelDir) -> None:
        self.model = model
        self.tokenizer = model.tokenizer()
        self.name = model.name
        self.dim = model.hp.enc_dim

    @property
    @abstractmethod
    def has_scorer(self) -> bool: ...

    @abstractmethod
    def embed_ids(self, rows: Rows, channel: Channel = "in0") -> np.ndarray: ...

    @abstractmethod
    def score_ids(self, rows0: Rows, rows1: Rows) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str], channel: Channel = "in0") -> np.ndarray:
        return self.embed_ids(self.tokenizer.encode(texts), channel)

    def check(self) -> None:
        """Raise EncoderError unless the backend answers now; the readiness probe calls it."""
        self.embed_ids([[self.tokenizer.unk_id]])

    @abstractmethod
    def close(self) -> None:
        """Release sessions and connections."""
