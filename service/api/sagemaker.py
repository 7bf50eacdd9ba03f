"""SageMaker's container contract: GET /ping and POST /invocations in Object2Vec's inference formats.

/invocations takes `{"instances":[...]}` (application/json) or one instance per line (application/jsonlines);
an instance with only in0 or only in1 gets `{"embeddings":[...]}` from that encoder, one with both gets
`{"scores":[...]}`, from the default model (promoted, else configured). Ids are token ids of its vocabulary, as
SageMaker takes them. The answer is JSON unless Accept asks for JSON Lines. `infer_max_seqlens=N[,M]` in the
Content-Type truncates in0 (and in1).
A request holds at most O2V_MAX_INVOCATION_INSTANCES instances (which bounds the answer: 1000 384-d embeddings are
about 5 MB of JSON) and O2V_MAX_INVOCATION_TOKENS token ids, counted on the parsed JSON before any validation or
encoding: unbounded, 6 MiB of tiny instances take 38 s and 2.7 GB to answer. POST /endpoints/{name}/invocations, the
runtime API's path, is the same route.
"""

import json
from email.message import Message
from typing import Any, cast

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from service.api.deps import DefaultEmbedderDep
from service.api.errors import BODY_ERRORS, ApiError, from_validation_errors, responses
from service.api.limits import current
from service.api.render import dumps, json_response
from service.api.schemas.sagemaker import CHANNELS, OPENAPI_BODY, InvocationsRequest, InvocationsResponse, PingResponse
from service.encoders.base import MAX_SEQ_LEN
from service.encoders.embedder import Embedder

ENDPOINT_INVOCATIONS = "/endpoints/{name}/invocations"
"""InvokeEndpoint's path on the SageMaker runtime API, where boto3 sends it."""
JSON_LINES = ("application/jsonlines", "application/jsonl", "application/x-jsonlines")


def _content_type(header: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = header
    seqlens = message.get_param("infer_max_seqlens")
    return message.get_content_type(), seqlens if isinstance(seqlens, str) else None


def _seqlens(value: str | None) -> tuple[int | None, int | None]:
    """`N` or `N,M` (each 1..5000) → the in0 and in1 truncation lengths."""
    if value is None:
        return None, None
    try:
        lengths = [int(v) for v in value.split(",")]
    except ValueError:
        lengths = []
    if not 1 <= len(lengths) <= 2 or not all(1 <= n <= MAX_SEQ_LEN for n in lengths):
        raise ApiError(422, f"infer_max_seqlens must be N or N,M with each in 1..{MAX_SEQ_LEN}", "Content-Type")
    return lengths[0], lengths[-1]


def _too_many(what: str, n: int, limit: int, setting: str) -> ApiError:
    return ApiError(422, f"{n} {what} in one request, the limit is {limit} ({setting}): send fewer", "instances")


def _parse(raw: bytes, what: str) -> Any:
    """json.loads with its RecursionError (JSON nested thousands deep) answered as the bad JSON it is."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ApiError(400, f"{what} is not valid JSON here: it is nested too deep", "body") from exc
    except ValueError as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}", "body") from exc


def _instances(raw: bytes, media: str, max_instances: int) -> Any:
    if not raw.strip():
        raise ApiError(400, "the body is empty: send Object2Vec instances", "body")
    if media in JSON_LINES:
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) > max_instances:  # counted before any line is parsed
            raise _too_many("instances", len(lines), max_instances, "O2V_MAX_INVOCATION_INSTANCES")
        return {"instances": [_parse(line, "a line of the JSON Lines body") for line in lines]}
    if media != "application/json":
        message = f"Content-Type must be application/json or application/jsonlines, not {media}"
        raise ApiError(415, message, "Content-Type")
    return _parse(raw, "the body")


def _check_volume(payload: Any, max_instances: int, max_tokens: int) -> None:
    """422 for too many instances or token ids (as for too many texts), counted on the parsed JSON before pydantic
    builds any model; anything malformed is left to the validation that follows, which names the field."""
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list):
        return
    if len(instances) > max_instances:
        raise _too_many("instances", len(instances), max_instances, "O2V_MAX_INVOCATION_INSTANCES")
    tokens = sum(
        len(ids) for x in instances if isinstance(x, dict) for c in CHANNELS if isinstance(ids := x.get(c), list)
    )
    if tokens > max_tokens:
        raise _too_many("token ids", tokens, max_tokens, "O2V_MAX_INVOCATION_TOKENS")


def _render(predictions: list[dict[str, Any]], accept: str) -> Response:
    if any(kind in accept for kind in JSON_LINES):
        return Response(b"".join(dumps(p) + b"\n" for p in predictions), media_type="application/jsonlines")
    return json_response({"predictions": predictions})


async def _predict(embedder: Embedder, rows: list[dict[str, list[int] | None]]) -> list[dict[str, Any]]:
    """Object2Vec's two modes per instance: scores for in0+in1 pairs, embeddings from the one encoder given."""
    predictions: list[dict[str, Any]] = [{} for _ in rows]
    pairs = [i for i, r in enumerate(rows) if r["in0"] and r["in1"]]
    if pairs:
        in0 = [cast(list[int], rows[i]["in0"]) for i in pairs]  # both are there: `pairs` holds no other rows
        in1 = [cast(list[int], rows[i]["in1"]) for i in pairs]
        scores = await embedder.score_ids(in0, in1)
        for i, s in zip(pairs, scores, strict=True):
            predictions[i] = {"scores": s}
    for channel in CHANNELS:
        alone = [i for i, r in enumerate(rows) if r[channel] and not predictions[i]]
        if alone:
            vectors = await embedder.embed_ids([cast(list[int], rows[i][channel]) for i in alone], channel)
            for i, v in zip(alone, vectors, strict=True):
                predictions[i] = {"embeddings": v}
    return predictions


router = APIRouter(tags=["sagemaker"])


@router.get("/ping", response_model=PingResponse)
async def ping() -> Response:
    """SageMaker's health check: 200 once the model is loaded (the server listens only after that)."""
    return json_response({"status": "ok"})


@router.post(
    "/invocations",
    response_model=InvocationsResponse,
    responses=responses(*BODY_ERRORS, 502, 503),
    openapi_extra=OPENAPI_BODY,
)
@router.post(
    ENDPOINT_INVOCATIONS,
    response_model=InvocationsResponse,
    responses=responses(*BODY_ERRORS, 502, 503),
    openapi_extra=OPENAPI_BODY,
    include_in_schema=False,
)
async def invocations(request: Request, embedder: DefaultEmbedderDep) -> Response:
    """Object2Vec inference: embeddings for single-input instances, scores for in0+in1 pairs. Also served at
    the SageMaker runtime's own path, so boto3's `sagemaker-runtime` client with `endpoint_url` works as is
    (any endpoint name; its CustomAttributes header is not read)."""
    media, seqlens = _content_type(request.headers.get("content-type", "application/json"))
    limit0, limit1 = _seqlens(seqlens)
    limits = current()
    payload = _instances(await request.body(), media, limits.max_invocation_instances)
    _check_volume(payload, limits.max_invocation_instances, limits.max_invocation_tokens)
    try:
        instances = InvocationsRequest.model_validate(payload).instances
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from exc
    rows = [{"in0": x.in0 and x.in0[:limit0], "in1": x.in1 and x.in1[:limit1]} for x in instances]
    return _render(await _predict(embedder, rows), request.headers.get("accept", ""))
