"""Property-based run of the gateway's OpenAPI schema (schemathesis): no 5xx, answers as the schema says, valid
input accepted, invalid input refused. Bounded examples per operation keep it well under a minute."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import get_client
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api.app import create_app
from service.settings import Settings
from tests.adapt_fixtures import intents
from tests.gateway_fixtures import onnx_encoder
from tests.schemathesis_fixtures import operation_labels, run_operation

GATEWAY_TAGS = ["embeddings", "similarity", "rerank", "tokenize", "tei", "operations", "sagemaker"]
MODEL_TAGS = ["models"]
"""The model registry and its jobs, fuzzed on an app with a write key (their writes are keyed), called with it."""
KEY = "schemathesis-models-key"
FUZZ_EPOCHS = "1"
"""A fuzzed adaptation job trains one epoch: the generated data is tiny, and with a generated `epochs` of up to 100
one accepted job could hold the CPU for minutes. The server refuses a second job while one runs (409), so at most
one such job trains at a time; the app's shutdown stops it."""

# schemathesis keeps the app's lifespan running until the interpreter exits; registered first, this removal runs
# after that shutdown has written its state
DATA_DIR = tempfile.mkdtemp(prefix="o2v-schemathesis-")
MODELS_DIR = tempfile.mkdtemp(prefix="o2v-schemathesis-models-")
for folder in (DATA_DIR, MODELS_DIR):
    atexit.register(shutil.rmtree, folder, True)


@schemathesis.serializer("application/jsonlines")
def _json_lines(context, value):
    """The schema describes a JSON Lines body as the array of its lines."""
    lines = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


DOMAIN_RULES = {"/models/adapt"}
"""Rules a schema cannot state, so schema-valid input may be refused (each with a 4xx naming its field, tested in
tests/test_models_api.py and test_adapt_e2e.py): exactly one of `collection` + `label_key` and `pairs`, a
collection that exists, at least 2 items per label, hyperparameters within their ranges, a free model name."""

schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(data_dir=DATA_DIR), onnx_encoder())
).include(tag=GATEWAY_TAGS)


MODELS_APP = create_app(Settings(data_dir=MODELS_DIR, api_key=KEY), onnx_encoder())
models = schemathesis.openapi.from_asgi("/openapi.json", MODELS_APP).include(tag=MODEL_TAGS)
TINY = "tiny-intents"
"""The fuzzing app's one collection: the adaptation fixtures' 18 labelled utterances (label key `intent`)."""


def tiny_collection() -> None:
    """Made through schemathesis' own client of the app (the one lifespan and event loop its calls use), so that a
    fuzzed job has real data to train on."""
    with get_client(MODELS_APP) as http:
        http.headers.update({"Authorization": f"Bearer {KEY}"})
        if http.get(f"/collections/{TINY}").status_code == 200:
            return
        http.put(f"/collections/{TINY}").raise_for_status()
        data = intents()
        rows = enumerate(zip(data.texts, data.labels, strict=True))
        items = [{"id": str(i), "text": text, "metadata": {"intent": label}} for i, (text, label) in rows]
        http.post(f"/collections/{TINY}/items", json={"items": items}).raise_for_status()


def short_jobs(case) -> None:
    """POST /models/adapt trains FUZZ_EPOCHS epochs whatever `hyperparameters` the fuzzer chose, and a body naming a
    collection (and no pairs) trains on the tiny one (its label key, the default parent), so generated requests
    start real, short jobs. A body that is not an object, or whose fields are not of their types, is left as
    generated: it is refused before any job."""
    body = case.body if case.path == "/models/adapt" and isinstance(case.body, dict) else None
    if body is None or not isinstance(body.get("hyperparameters", {}), dict):
        return
    body = {**body, "hyperparameters": {**body.get("hyperparameters", {}), "epochs": FUZZ_EPOCHS}}
    typed = isinstance(body.get("label_key"), str | None) and isinstance(body.get("parent"), str | None)
    if isinstance(body.get("collection"), str) and typed and not body.get("pairs"):
        body.update(collection=TINY, label_key="intent", parent=None, pairs=None)
    case.body = body


def token_arrays(case) -> bool:
    """/v1/embeddings input with token arrays: their decoded text still has to be a text (something visible, within
    O2V_MAX_TEXT_CHARS), which JSON Schema cannot say of ids, so a schema-valid array may be refused (never a 5xx)."""
    body = case.body if case.path == "/v1/embeddings" and isinstance(case.body, dict) else {}
    value = body.get("input")
    return isinstance(value, list) and any(isinstance(item, (int, float, list)) for item in value)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def gateway_case(case) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if token_arrays(case) else None)


@pytest.mark.parametrize("operation", operation_labels(schema))
def test_gateway_follows_its_schema(operation: str) -> None:
    run_operation(schema, operation, gateway_case)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def model_case(case) -> None:
    tiny_collection()
    short_jobs(case)
    excluded = [positive_data_acceptance] if case.path in DOMAIN_RULES else None
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=excluded)


@pytest.mark.parametrize("operation", operation_labels(models))
def test_model_routes_follow_their_schema(operation: str) -> None:
    run_operation(models, operation, model_case)
