"""Property-based run of the gateway's OpenAPI schema (schemathesis): no 5xx, answers as the schema says, valid
input accepted, invalid input refused. Bounded examples per operation keep it well under a minute."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings

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


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_gateway_follows_its_schema(case):
    case.call_and_validate()
