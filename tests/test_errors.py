"""One error hierarchy (service/errors.py): every domain's errors carry their own status, type, field and exit code,
and the API answers any of them through one handler, in the shape and with the statuses it always had."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import errors
from service.api.errors import RETRY_AFTER_S, ApiError, install
from service.drift.errors import FixedStream, InvalidBaseline, InvalidStream
from service.encoders.base import BackendUnavailable, BadBackendResponse, NoScorer, Overloaded
from service.index.cluster import Cancelled
from service.index.errors import CollectionError, Conflict, InvalidRequest, NotFound, StoreUnavailable, Unusable
from service.settings import Settings
from tests.drift_fixtures import config, monitor, scores


@pytest.mark.parametrize(
    ("cls", "base", "status", "type", "exit_code"),
    [
        (InvalidRequest, errors.InvalidRequest, 422, "validation_error", 2),
        (NotFound, errors.NotFound, 404, "not_found", 2),
        (Conflict, errors.Conflict, 409, "conflict", 2),
        (Unusable, errors.Conflict, 409, "conflict", 2),
        (StoreUnavailable, errors.Unavailable, 503, "unavailable", 69),
        (Cancelled, errors.ServiceError, 503, "unavailable", 69),
        (BackendUnavailable, errors.Unavailable, 503, "backend_unavailable", 69),
        (Overloaded, errors.Unavailable, 503, "overloaded", 69),
        (BadBackendResponse, errors.BadGateway, 502, "bad_gateway", 76),
        (NoScorer, errors.InvalidRequest, 422, "validation_error", 2),
        (InvalidStream, errors.InvalidRequest, 422, "validation_error", 2),
        (InvalidBaseline, errors.InvalidRequest, 422, "validation_error", 2),
        (FixedStream, errors.Conflict, 409, "conflict", 2),
    ],
)
def test_each_error_carries_the_status_type_and_exit_code_it_always_answered(
    cls: type[errors.ServiceError], base: type[errors.ServiceError], status: int, type: str, exit_code: int
) -> None:
    error = cls("what went wrong", "where")
    assert isinstance(error, base) and not isinstance(error, ValueError)
    assert (error.status, error.type, error.exit_code) == (status, type, exit_code)
    assert (error.message, error.field, str(error)) == ("what went wrong", "where", "what went wrong")


def test_a_subclass_naming_only_its_status_gets_that_status_type_and_exit_code() -> None:
    class Gone(errors.ServiceError):
        status = 503

    class TooBig(CollectionError):
        status = 413

    assert (Gone.type, Gone.exit_code) == ("unavailable", errors.EX_UNAVAILABLE)
    assert (TooBig.type, TooBig.exit_code) == ("payload_too_large", errors.EX_USAGE)
    assert (errors.ServiceError.status, errors.ServiceError.exit_code) == (500, errors.EX_SOFTWARE)


def test_named_constructors_hold_each_message_once() -> None:
    assert (NotFound.collection("c").message, NotFound.collection("c").field) == ("no collection 'c'", "name")
    assert NotFound.dropped("c").message == "collection 'c' was dropped"
    item = NotFound.item("c", "x-1")
    assert (item.message, item.field) == ("no item 'x-1' in collection 'c'", "item_id")
    stream = errors.NotFound.stream("s")
    assert (stream.message, stream.field, stream.status) == ("no drift stream named 's'", "stream", 404)
    assert type(NotFound.collection("c")) is NotFound  # the index's NotFound, a CollectionError
    assert type(errors.NotFound.stream("s")) is errors.NotFound


def test_drift_errors_name_their_field() -> None:
    """The stream-count limit names `stream` (the API once answered it as `scores`), a bad baseline `scores`."""
    m = monitor(config=config(max_streams=4))  # the 3 built-in streams and one more
    assert m.create_stream("one")
    with pytest.raises(InvalidStream, match="at most 4 drift streams") as limit:
        m.set_baseline("two", scores(50), "upload")
    assert (limit.value.field, limit.value.status) == ("stream", 422)
    with pytest.raises(InvalidStream, match="stream name must match") as name:
        m.create_stream("no spaces")
    assert name.value.field == "stream"
    with pytest.raises(InvalidBaseline, match="at least") as few:
        m.set_baseline("one", [0.5] * 3, "upload")
    assert few.value.field == "scores"
    with pytest.raises(FixedStream) as fixed:
        m.delete_stream("similarity")
    assert (fixed.value.status, fixed.value.field) == (409, "stream")
    with pytest.raises(errors.NotFound) as missing:
        m.delete_stream("never-made")
    assert (missing.value.message, missing.value.field) == ("no drift stream named 'never-made'", "stream")
    with pytest.raises(errors.NotFound):
        m.export("never-made")


def _app(raised: Exception) -> TestClient:
    app = FastAPI()
    app.state.settings = Settings()
    install(app)

    @app.get("/fail")
    def fail() -> None:
        raise raised

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("raised", "status", "body", "retry_after"),
    [
        (
            StoreUnavailable("the vector store did not answer"),
            503,
            ("unavailable", "the vector store did not answer", None),
            str(RETRY_AFTER_S),
        ),
        (BackendUnavailable("down"), 503, ("backend_unavailable", "down", None), str(RETRY_AFTER_S)),
        (BadBackendResponse("nonsense"), 502, ("bad_gateway", "nonsense", None), None),
        (NotFound.collection("c"), 404, ("not_found", "no collection 'c'", "name"), None),
        (
            InvalidStream("at most 4 drift streams"),
            422,
            ("validation_error", "at most 4 drift streams", "stream"),
            None,
        ),
        (FixedStream("built in"), 409, ("conflict", "built in", "stream"), None),
        (ApiError(503, "busy", headers={"Retry-After": "3"}), 503, ("unavailable", "busy", None), "3"),
        (ApiError(401, "no key", "Authorization"), 401, ("unauthorized", "no key", "Authorization"), None),
        (RuntimeError("boom"), 500, ("internal_error", "internal error; the server log has the details", None), None),
    ],
)
def test_one_handler_answers_every_service_error_as_it_says(
    raised: Exception, status: int, body: tuple[str, str, str | None], retry_after: str | None
) -> None:
    with _app(raised) as c:
        answer = c.get("/fail")
    assert answer.status_code == status
    assert answer.json() == {"error": dict(zip(("type", "message", "field"), body, strict=True))}
    assert answer.headers.get("Retry-After") == retry_after
