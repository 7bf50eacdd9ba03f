"""Property-based run of the OpenAPI schema of the routes behind the API key, collections and drift (schemathesis):
no 5xx on any generated request, answers as the schema says, valid input accepted, invalid input refused. With
test_gateway_schemathesis.py it covers every operation of the schema (checked below)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, initialize
from schemathesis.checks import ignored_auth, positive_data_acceptance
from schemathesis.generation.stateful.state_machine import StepInput

from service.api.app import create_app
from service.settings import Settings
from tests.gateway_fixtures import onnx_encoder
from tests.schemathesis_fixtures import operation_labels, run_operation

DATA_DIR = tempfile.mkdtemp(prefix="o2v-schemathesis-collections-")
atexit.register(shutil.rmtree, DATA_DIR, True)

KEY = "schemathesis-test-key"
TAGS = ["collections", "drift"]
APP = create_app(Settings(data_dir=DATA_DIR, api_key=KEY), onnx_encoder())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(tag=TAGS)
NOT_CHECKED = [
    positive_data_acceptance,  # rules a schema cannot state: cluster k ≤ items stored, parameters per index kind,
    # a vector with a non-zero norm in float32, exactly one of a drift baseline's scores and pairs; each is refused
    # with a 422 naming its field (test_collections_api, test_drift_api)
]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def collection_case(case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=NOT_CHECKED)


@pytest.mark.parametrize("operation", operation_labels(schema))
def test_collection_routes_follow_their_schema(operation: str) -> None:
    run_operation(schema, operation, collection_case)


LINKS_ONLY = schemathesis.Config.from_dict({"phases": {"stateful": {"inference": {"algorithms": []}}}})
"""The schema's own links, not schemathesis' guesses: its dependency analysis takes `GET /collections` as the producer
of names and so never starts a scenario with the PUT that creates one."""
STATEFUL = schemathesis.openapi.from_asgi("/openapi.json", APP, config=LINKS_ONLY).include(tag="collections")


class Stateful(STATEFUL.as_state_machine()):  # type: ignore[misc]
    """Chains by the schema's OpenAPI links (PUT collection → upsert items → search / classify / cluster / delete the
    item), so the item routes run on collections that exist and hold data instead of answering mostly 404s. Each
    scenario starts from no collections, so a replayed scenario meets the state it met the first time."""

    def setup(self) -> None:
        registry = APP.state.services.collections
        for name in registry.names():
            registry.drop(name)

    @initialize(target=Bundle("catch_all"), case=STATEFUL["/collections/{name}"]["PUT"].as_strategy())
    def create_a_collection(self, case: Any) -> Any:
        """Every scenario starts with a PUT: schemathesis roots only POSTs and GETs without path parameters, so the
        creating PUT and its links would otherwise never run."""
        self.recorder.record_case(case=case)
        return self.step(StepInput.initial(case))

    def before_call(self, case: Any) -> None:
        """The key on every call (401s are the stateless test's). Texts, not generated vectors, for upserts and queries:
        a random width never matches the collection's, and the stateless test covers vectors; so chained routes meet
        items they can find."""
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
        body = case.body if isinstance(case.body, dict) else {}
        texts = {UPSERT: None, SEARCH: "query", CLASSIFY: "text", BATCH: "query"}
        if case.operation.label not in texts:
            return
        field = texts[case.operation.label]
        entries = [body]
        if field is None or case.operation.label == BATCH:
            listed = body.get("items" if field is None else "queries")  # a list, or anything in negative cases
            entries = listed if isinstance(listed, list) else []
        for entry in entries:
            if isinstance(entry, dict):
                entry.pop("vector", None)
                if entry.get(field or "text") is None:
                    entry[field or "text"] = "a generated text"
        if isinstance(case.body, dict):
            case.body = {**body}  # assigned, not only changed in place: schemathesis then checks the body again

    def after_call(self, response: Any, case: Any) -> None:
        """A re-embedding runs on in the background: wait for it, so the next step meets the same state each time."""
        jobs = APP.state.services.reembed_jobs
        while any(job["state"] == "running" for job in jobs.jobs.values()):
            time.sleep(0.01)

    def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
        STATUSES[case.operation.label].add(response.status_code)
        case.validate_response(response, excluded_checks=[*NOT_CHECKED, ignored_auth])  # the key is always sent


STATUSES: defaultdict[str, set[int]] = defaultdict(set)
UPSERT, SEARCH, CLASSIFY, BATCH = (
    f"POST /collections/{{name}}/{route}" for route in ("items", "search", "classify", "search/batch")
)


def test_stateful_chains_reach_the_item_routes_with_real_data() -> None:
    Stateful.run(
        settings=settings(
            max_examples=300,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    reached = {label for label, codes in STATUSES.items() if codes & {200, 201, 204}}
    reads = [f"POST /collections/{{name}}/{route}" for route in ("get", "scroll", "count", "search/batch")]
    for label in (UPSERT, SEARCH, CLASSIFY, "DELETE /collections/{name}/items/{item_id}", *reads):
        assert label in reached, (label, dict(STATUSES))
    assert not any(code >= 500 and code != 503 for codes in STATUSES.values() for code in codes), dict(STATUSES)


def test_schemathesis_runs_every_operation_of_the_schema() -> None:
    from tests.test_gateway_schemathesis import GATEWAY_TAGS, MODEL_TAGS

    run = {*GATEWAY_TAGS, *MODEL_TAGS, *TAGS}
    operations = [(path, method, op) for path, item in APP.openapi()["paths"].items() for method, op in item.items()]
    unrun = [f"{method.upper()} {path}" for path, method, op in operations if not run & {*op.get("tags", [])}]
    collections = [path for path, _, op in operations if "collections" in op.get("tags", [])]
    assert len(collections) == 15 and len(operations) == 44 and not unrun, unrun
