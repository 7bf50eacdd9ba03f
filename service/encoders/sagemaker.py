"""SageMakerEncoder: embeddings and pair scores from a SageMaker Object2Vec endpoint through boto3 InvokeEndpoint.

Requests and answers are Object2Vec's documented inference formats (reference/object2vec.md §3):
embeddings  `{"instances":[{"in0":[ids]}]}` with `Content-Type: application/json; infer_max_seqlens=N`
            → `{"predictions":[{"embeddings":[...]}]}`
pair scores `{"instances":[{"in0":[ids],"in1":[ids]}]}` → `{"predictions":[{"scores":[...]}]}`
A batch is cut so that neither a request body nor its expected answer passes InvokeEndpoint's 6 MiB limit.
Retries are botocore's (adaptive mode); what is still failing afterwards becomes BackendUnavailable (503 with
Retry-After for our caller), and an answer of the wrong shape becomes BadBackendResponse (502).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.encoders.base import MAX_SEQ_LEN, BackendUnavailable, BadBackendResponse, Channel, Encoder, Rows
from service.encoders.model_dir import ModelDir
from service.settings import Settings

_FLOAT_JSON_BYTES = 25  # "-1.2345678901234567e-05, ": the longest a float of the answer prints


class SageMakerEncoder(Encoder):
    """An Object2Vec endpoint trained with this model directory's tokenizer (its vocab.json)."""

    backend = "sagemaker"

    def __init__(self, model: ModelDir, endpoint: str, client: Any, max_body_bytes: int = 6_291_456) -> None:
        super().__init__(model)
        self.endpoint = endpoint
        self.max_body_bytes = max_body_bytes
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> SageMakerEncoder:
        if not settings.sagemaker_endpoint:
            raise ValueError("the sagemaker backend needs an endpoint name: set O2V_SAGEMAKER_ENDPOINT")
        config = Config(
            retries={"mode": "adaptive", "total_max_attempts": settings.sagemaker_max_attempts},
            connect_timeout=settings.sagemaker_connect_timeout_s,
            read_timeout=settings.sagemaker_read_timeout_s,
        )
        client = boto3.session.Session().client(
            "sagemaker-runtime",
            region_name=settings.sagemaker_region,
            endpoint_url=settings.sagemaker_endpoint_url,
            config=config,
        )
        model = ModelDir.load(settings.model_dir)
        return cls(model, settings.sagemaker_endpoint, client, settings.sagemaker_max_body_bytes)

    @property
    def has_scorer(self) -> bool:
        return True  # every Object2Vec endpoint scores pairs

    def embed_ids(self, rows: Rows, channel: Channel = "in0") -> np.ndarray:
        limit = min(self.model.max_seq_len(channel), MAX_SEQ_LEN)
        instances = [{channel: list(row[:limit])} for row in rows]
        vectors = []
        for chunk in self._chunks(instances, answer_bytes=self.dim * _FLOAT_JSON_BYTES):
            seq_len = max(len(inst[channel]) for inst in chunk)
            answer = self._invoke(chunk, f"application/json; infer_max_seqlens={seq_len}")
            vectors.append(_read_predictions(answer, "embeddings", len(chunk), self.dim))
        return np.concatenate(vectors) if vectors else np.empty((0, self.dim), np.float32)

    def score_ids(self, rows0: Rows, rows1: Rows) -> np.ndarray:
        instances = [{"in0": list(a), "in1": list(b)} for a, b in zip(rows0, rows1, strict=True)]
        scores = []
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
            error = exc.response.get("Error", {})
            message = f"SageMaker endpoint {self.endpoint}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 400:
                raise BadBackendResponse(message) from exc  # ValidationError: our request or the endpoint name
            raise BackendUnavailable(message) from exc
        except BotoCoreError as exc:  # timeouts, refused connections, missing credentials
            raise BackendUnavailable(f"SageMaker endpoint {self.endpoint}: {exc}") from exc
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise BadBackendResponse(f"SageMaker endpoint {self.endpoint} answered with invalid JSON") from exc

    def close(self) -> None:
        self._client.close()


def _read_predictions(answer: Any, key: str, count: int, width: int | None) -> np.ndarray:
    """`{"predictions":[{key:[floats]}...]}` → float32 [count, width], or BadBackendResponse naming the problem."""
    try:
        predictions = answer["predictions"]
        matrix = np.asarray([p[key] for p in predictions], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadBackendResponse(f"SageMaker answer is not {{'predictions': [{{'{key}': [numbers]}}]}}") from exc
    if matrix.ndim != 2 or matrix.shape[0] != count or (width is not None and matrix.shape[1] != width):
        raise BadBackendResponse(
            f"SageMaker answer has {key} of shape {list(matrix.shape)}; expected {count} rows of {width or 'K'}"
        )
    if not np.isfinite(matrix).all():
        raise BadBackendResponse(f"SageMaker answer has non-finite {key}")
    return matrix
