"""Property-based run of the gateway's OpenAPI schema (schemathesis): no 5xx, answers as the schema says, valid
input accepted, invalid input refused. Bounded examples per operation keep it well under a minute."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api.app import create_app
from service.settings import Settings
from tests.gateway_fixtures import onnx_encoder

GATEWAY_TAGS = ["embeddings", "similarity", "rerank", "tokenize", "tei", "operations", "sagemaker"]

# schemathesis keeps the app's lifespan running until the interpreter exits; registered first, this removal runs
# after that shutdown has written its state
DATA_DIR = tempfile.mkdtemp(prefix="o2v-schemathesis-")
atexit.register(shutil.rmtree, DATA_DIR, True)


@schemathesis.serializer("application/jsonlines")
def _json_lines(context, value):
    """The schema describes a JSON Lines body as the array of its lines."""
    lines = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(data_dir=DATA_DIR), onnx_encoder())
).include(tag=GATEWAY_TAGS)


def token_arrays(case) -> bool:
    """/v1/embeddings input with token arrays: their decoded text still has to be a text (something visible, within
    O2V_MAX_TEXT_CHARS), which JSON Schema cannot say of ids, so a schema-valid array may be refused (never a 5xx)."""
    body = case.body if case.path == "/v1/embeddings" and isinstance(case.body, dict) else {}
    value = body.get("input")
    return isinstance(value, list) and any(isinstance(item, (int, float, list)) for item in value)


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_gateway_follows_its_schema(case):
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if token_arrays(case) else None)
