"""SageMakerEncoder: embeddings and pair scores from a SageMaker Object2Vec endpoint through boto3 InvokeEndpoint.

Requests and answers are Object2Vec's documented inference formats (reference/object2vec.md §3), one input type
per request as AWS documents it (only in0, only in1, or pairs; never mixed):
embeddings  `{"instances":[{"in0":[ids]}]}` with `Content-Type: application/json; infer_max_seqlens=<FWD>,<BCK>`
            → `{"predictions":[{"embeddings":[...]}]}`
pair scores `{"instances":[{"in0":[ids],"in1":[ids]}]}` → `{"predictions":[{"scores":[...]}]}`
A batch is cut so that neither a request body nor its expected answer passes InvokeEndpoint's 6 MiB limit.
Retries are botocore's (adaptive mode). What still fails afterwards is mapped by its AWS error code (RETRY_LATER):
a state that passes becomes BackendUnavailable (503 with Retry-After for our caller), anything else, and an answer
of the wrong shape, becomes BadBackendResponse (502) with the endpoint's message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.encoders.base import (
    INVOKE_ENDPOINT_MAX_BYTES,
    MAX_SEQ_LEN,
    BackendUnavailable,
    BadBackendResponse,
    Channel,
    Encoder,
    Rows,
)
from service.model.model_dir import ModelDir
from service.settings import Settings

_FLOAT_JSON_BYTES = 25  # "-1.2345678901234567e-05, ": the longest a float of the answer prints

# InvokeEndpoint error codes that say "later" (503 + Retry-After): ThrottlingException (a common error, HTTP 400),
# ModelNotReadyException (429: the model is still loading), ServiceUnavailable (503) and InternalFailure (500: a fault
# on AWS's side, not of our request, which botocore itself treats as transient). The others say "not like this", so
# retrying will not help (502): ModelError (424: the container refused or crashed; its status and message are passed
# on), ValidationError (400: our request or the endpoint name), InternalDependencyException (530: AWS says to contact
# support), AccessDenied and other credential errors. An unknown code falls back to its HTTP status (429/5xx: later).
RETRY_LATER = frozenset({"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable", "InternalFailure"})
NOT_RETRYABLE = frozenset({"ModelError", "ValidationError", "InternalDependencyException"})
READ_TIMEOUT_S = 70.0
"""botocore's read timeout: SageMaker gives a container 60 s to answer an invocation, and AWS advises a client read
timeout above it (70 s), so the endpoint's own timeout error arrives rather than ours."""
CONNECT_TIMEOUT_S = 2.0
"""botocore's connect timeout: a TCP and TLS handshake with a regional endpoint takes milliseconds, so 2 s means the
network is down, and the adaptive retries (O2V_SAGEMAKER_MAX_ATTEMPTS) try again rather than wait."""


class SageMakerEncoder(Encoder):
    """An Object2Vec endpoint trained with this model directory's tokenizer (its vocab.json).

    `dim` starts as the model directory's enc_dim, but the endpoint's model defines the width (per AWS, enc_dim or a
    token_embedding_dim, whichever applies): the first embeddings answered fix it, and a later answer of another
    width is a 502, so vectors of two different models never mix in one index.
    """

    backend = "sagemaker"

    def __init__(
        self, model: ModelDir, endpoint: str, client: Any, max_body_bytes: int = INVOKE_ENDPOINT_MAX_BYTES
    ) -> None:
        super().__init__(model)
        self.endpoint = endpoint
        self.max_body_bytes = max_body_bytes
        self._client = client
        self._width: int | None = None
        self._width_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SageMakerEncoder:
        if not settings.sagemaker.endpoint:
            raise ValueError("the sagemaker backend needs an endpoint name: set O2V_SAGEMAKER_ENDPOINT")
        config = Config(
            retries={"mode": "adaptive", "total_max_attempts": settings.sagemaker.max_attempts},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
        )
        client = boto3.session.Session().client(
            "sagemaker-runtime",
            region_name=settings.sagemaker.region,
            endpoint_url=settings.sagemaker.endpoint_url,
            config=config,
        )
        model = ModelDir.load(settings.model_dir)
        return cls(model, settings.sagemaker.endpoint, client)

    @property
    def has_scorer(self) -> bool:
        return True  # every Object2Vec endpoint scores pairs

    def embed_ids(self, rows: Rows, channel: Channel = "in0") -> np.ndarray:
        limit = min(self.model.max_seq_len(channel), MAX_SEQ_LEN)
        instances: list[dict[str, list[int]]] = [{channel: list(row[:limit])} for row in rows]
        # infer_max_seqlens=<FWD>,<BCK> as documented: the model's bounds, the sent encoder's one cut to the chunk
        lengths = {c: min(self.model.max_seq_len(c), MAX_SEQ_LEN) for c in ("in0", "in1")}
        vectors = []
        for chunk in self._chunks(instances, answer_bytes=self.dim * _FLOAT_JSON_BYTES):
            lengths[channel] = max(1, *(len(inst[channel]) for inst in chunk))
            answer = self._invoke(chunk, f"application/json; infer_max_seqlens={lengths['in0']},{lengths['in1']}")
            matrix = _read_predictions(answer, "embeddings", len(chunk), None)
            self._check_width(matrix.shape[1])
            vectors.append(matrix)
        return np.concatenate(vectors) if vectors else np.empty((0, self.dim), np.float32)

    def _check_width(self, width: int) -> None:
        with self._width_lock:
            if self._width is None:
                self._width = self.dim = width
        if width != self._width:
            raise BadBackendResponse(
                f"SageMaker endpoint {self.endpoint} answered embeddings of width {width}, its earlier answers "
                f"{self._width}: the endpoint's model changed; restart this service to take the new width"
            )

    def score_ids(self, rows0: Rows, rows1: Rows) -> np.ndarray:
        instances = [{"in0": list(a), "in1": list(b)} for a, b in zip(rows0, rows1, strict=True)]
        scores: list[np.ndarray] = []
        for chunk in self._chunks(instances, answer_bytes=64 * _FLOAT_JSON_BYTES):
            answer = self._invoke(chunk, "application/json")
            scores.append(_read_predictions(answer, "scores", len(chunk), scores[0].shape[1] if scores else None))
        return np.concatenate(scores) if scores else np.empty((0, 1), np.float32)

    def _chunks(self, instances: list[dict[str, list[int]]], answer_bytes: int) -> Iterator[list[dict[str, list[int]]]]:
        """Consecutive runs of instances whose request body and expected answer both fit max_body_bytes."""
        budget = self.max_body_bytes - len('{"instances":[]}')
        chunk: list[dict[str, list[int]]] = []
        body = answer = 0
        for inst in instances:
            size = len(json.dumps(inst, separators=(",", ":"))) + 1
            if chunk and (body + size > budget or answer + answer_bytes > budget):
                yield chunk
                chunk, body, answer = [], 0, 0
            chunk.append(inst)
            body += size
            answer += answer_bytes
        if chunk:
            yield chunk

    def _invoke(self, instances: list[dict[str, list[int]]], content_type: str) -> Any:
        body = json.dumps({"instances": instances}, separators=(",", ":")).encode()
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint, Body=body, ContentType=content_type, Accept="application/json"
            )
            payload = response["Body"].read()
        except ClientError as exc:
            raise self._client_error(exc) from exc
        except BotoCoreError as exc:  # timeouts, refused connections, missing credentials
            raise BackendUnavailable(f"SageMaker endpoint {self.endpoint}: {exc}") from exc
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise BadBackendResponse(f"SageMaker endpoint {self.endpoint} answered with invalid JSON") from exc

    def _client_error(self, exc: ClientError) -> BackendUnavailable | BadBackendResponse:
        """The error our caller gets for an InvokeEndpoint error answer, chosen by its code (RETRY_LATER)."""
        response: dict[str, Any] = dict(exc.response)
        code = response.get("Error", {}).get("Code", "")
        message = f"SageMaker endpoint {self.endpoint}: {code or 'error'}: {response.get('Error', {}).get('Message')}"
        if code == "ModelError":  # what the container said, and where its log is
            message += f" (the model answered {response.get('OriginalStatusCode')}: {response.get('OriginalMessage')!r}"
            message += f"; log stream {response['LogStreamArn']})" if response.get("LogStreamArn") else ")"
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        later = code in RETRY_LATER or (code not in NOT_RETRYABLE and (status == 429 or 500 <= status < 600))
        return BackendUnavailable(message) if later else BadBackendResponse(message)

    def close(self) -> None:
        self._client.close()


def _read_predictions(answer: Any, key: str, count: int, width: int | None) -> np.ndarray:
    """`{"predictions":[{key:[floats]}...]}` → float32 [count, width], or BadBackendResponse naming the problem."""
    try:
        predictions = answer["predictions"]
        matrix = np.asarray([p[key] for p in predictions], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadBackendResponse(f"SageMaker answer is not {{'predictions': [{{'{key}': [numbers]}}]}}") from exc
    if matrix.ndim != 2 or matrix.shape[0] != count or matrix.shape[1] == 0 or width not in (None, matrix.shape[1]):
        raise BadBackendResponse(
            f"SageMaker answer has {key} of shape {list(matrix.shape)}; expected {count} rows of {width or 'K'}"
        )
    if not np.isfinite(matrix).all():
        raise BadBackendResponse(f"SageMaker answer has non-finite {key}")
    return matrix
