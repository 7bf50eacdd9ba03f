"""Property-based run of the collection routes' OpenAPI schema (schemathesis): no 5xx on any generated request,
answers as the schema says, valid input accepted, invalid input refused."""

from __future__ import annotations

import atexit
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import allow_header_conformance, positive_data_acceptance

from service.api.app import create_app
from service.settings import Settings
from tests.gateway_fixtures import onnx_encoder

DATA_DIR = tempfile.mkdtemp(prefix="o2v-schemathesis-collections-")
atexit.register(shutil.rmtree, DATA_DIR, True)

KEY = "schemathesis"
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(data_dir=DATA_DIR, api_key=KEY), onnx_encoder())
).include(tag="collections")
NOT_CHECKED = [
    allow_header_conformance,  # Starlette's 405 lists the methods of one route, not of every route on the path
    positive_data_acceptance,  # rules a schema cannot state: cluster k ≤ items stored, parameters per index kind,
    # a vector with a non-zero norm in float32; each is refused with a 422 naming its field (test_collections_api)
]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_collection_routes_follow_their_schema(case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=NOT_CHECKED)
