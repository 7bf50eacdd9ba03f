"""The gateway, drift and auth routes under attack and bad input: each answers a 4xx in the shared error shape;
nothing crashes, hangs or is lost. Real app (TestClient), real onnxruntime, real HTTP servers for the webhook; no
mocks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.auth import OPEN_PATHS
from service.drift.files import read_baseline_file
from service.drift.notify import StatusNotifier
from service.drift.store import DriftStore
from service.encoders.base import INVOKE_ENDPOINT_MAX_BYTES
from service.settings import Settings
from tests.drift_fixtures import monitor, scores
from tests.gateway_fixtures import client, metric

WRITE, READ = "hardening-write-key", "hardening-read-key"
AS_WRITER = {"Authorization": f"Bearer {WRITE}"}
AS_READER = {"Authorization": f"Bearer {READ}"}
BASELINE = {"scores": scores(50)}


def error_of(answer: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) - {"param", "code"} == {"type", "message", "field"}  # /v1/*
    if field is not None:
        assert body["error"]["field"] == field, body
    return body["error"]


# item 2: /invocations is bounded in instances and token ids, refused before any work


def test_the_6mb_flood_of_tiny_instances_is_refused_at_once() -> None:
    """413,333 `{"in0": [1037]}` in 6 MB once answered 200 after 38 s with 1.88 GB (RSS to 2.96 GB)."""
    flood = [{"in0": [1037]}] * 413_333
    json_body = json.dumps({"instances": flood}, separators=(",", ":")).encode()
    lines_body = b"\n".join([json.dumps(flood[0], separators=(",", ":")).encode()] * len(flood))  # one line, repeated
    assert len(json_body) < INVOKE_ENDPOINT_MAX_BYTES
    with client() as c:
        encoded = metric(c, "o2v_batch_size_count")
        for body, media in ((json_body, "application/json"), (lines_body, "application/jsonlines")):
            started = time.perf_counter()
            answer = c.post("/invocations", content=body, headers={"content-type": media})
            error = error_of(answer, 422, "instances")
            assert time.perf_counter() - started < 30.0  # a hang guard; the refusal itself is checked below
            assert "413333 instances" in error["message"] and "1000" in error["message"]
            assert "O2V_MAX_INVOCATION_INSTANCES" in error["message"]
        assert metric(c, "o2v_batch_size_count") == encoded, "refused before any instance reached the encoder"


def test_instances_and_token_ids_have_their_own_limits() -> None:
    with client(max_invocation_instances=3, max_invocation_tokens=100) as c:
        assert c.post("/invocations", json={"instances": [{"in0": [5]}] * 3}).status_code == 200
        error = error_of(c.post("/invocations", json={"instances": [{"in0": [5]}] * 4}), 422, "instances")
        assert "4 instances" in error["message"] and "limit is 3" in error["message"]
        assert c.post("/invocations", json={"instances": [{"in0": [5] * 50, "in1": [6] * 50}]}).status_code == 200
        error = error_of(c.post("/invocations", json={"instances": [{"in0": [5] * 50, "in1": [6] * 51}]}), 422)
        assert "101 token ids" in error["message"] and "O2V_MAX_INVOCATION_TOKENS" in error["message"]
        schema = c.get("/openapi.json").json()["paths"]["/invocations"]["post"]["requestBody"]["content"]
        assert schema["application/json"]["schema"]["properties"]["instances"]["maxItems"] == 3


def test_a_full_request_at_the_default_limit_answers_within_sagemakers_6_mib() -> None:
    with client() as c:
        answer = c.post("/invocations", json={"instances": [{"in0": [1037 + i % 500]} for i in range(1000)]})
        assert answer.status_code == 200 and len(answer.content) < 6 * 2**20


# item 4: JSON nested too deep is a 400 on every route that reads a body

DEEP = b"[" * 100_000 + b"]" * 100_000


def concrete(path: str) -> str:
    """A route's path with its parameters filled in."""
    return path.replace("{name}", "c").replace("{stream}", "similarity").replace("{item_id}", "i")


def operations(c: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every route the app's OpenAPI schema lists: the whole class, new routes too."""
    paths = c.get("/openapi.json", headers=AS_WRITER).json()["paths"]
    return [(method.upper(), path, op) for path, ops in paths.items() for method, op in ops.items()]


def test_invocations_nested_100000_deep_is_400() -> None:
    with client() as c:
        for body, media in ((DEEP, "application/json"), (b'{"in0": ' + DEEP + b"}", "application/jsonlines")):
            error = error_of(c.post("/invocations", content=body, headers={"content-type": media}), 400, "body")
            assert "nested too deep" in error["message"]


def test_every_route_with_a_body_answers_deep_json_with_400() -> None:
    with client(api_key=WRITE) as c:
        with_body = [(m, p) for m, p, op in operations(c) if "requestBody" in op]
        assert len(with_body) >= 9
        headers = {"content-type": "application/json", **AS_WRITER}
        for method, path in with_body:
            assert c.request(method, concrete(path), content=DEEP, headers=headers).status_code == 400, path


def test_a_baseline_file_nested_too_deep_is_a_value_error(tmp_path: Path) -> None:
    """What `o2v drift baseline` reports as an error line rather than a RecursionError traceback."""
    path = tmp_path / "deep.json"
    path.write_bytes(DEEP)
    with pytest.raises(ValueError, match="nested too deep"):
        read_baseline_file(path)


# the drift state lives outside the collections' namespace; one found inside it is moved out


def baseline_source(c: TestClient) -> str:
    return c.get("/drift", params={"stream": "similarity"}).json()["streams"]["similarity"]["baseline"]["source"]


def test_dropping_a_collection_named_drift_keeps_the_drift_state(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert c.put("/drift/baseline/similarity", json={**BASELINE, "source": "golden"}, headers=AS_WRITER).is_success
        assert c.put("/collections/drift", headers=AS_WRITER).status_code == 201
        items = {"items": [{"id": "1", "text": "a guitar"}]}
        assert c.post("/collections/drift/items", json=items, headers=AS_WRITER).status_code == 200
        assert c.delete("/collections/drift", headers=AS_WRITER).status_code == 204
    assert (tmp_path / ".o2v" / "drift" / "state.json").is_file()
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert baseline_source(c) == "golden"


def old_layout(data_dir: Path) -> None:
    """Drift state where the service kept it before: data_dir/drift/state.json."""
    m = monitor(data_dir / "drift")
    m.set_baseline("similarity", scores(50), "golden")
    assert (data_dir / "drift" / "state.json").is_file()


def test_an_old_data_directory_keeps_working(tmp_path: Path) -> None:
    old_layout(tmp_path)
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert baseline_source(c) == "golden"
        assert not (tmp_path / "drift").exists()
        assert c.put("/collections/drift", headers=AS_WRITER).status_code == 201
        assert c.delete("/collections/drift", headers=AS_WRITER).status_code == 204
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert baseline_source(c) == "golden"


def test_an_old_collection_named_drift_stays_when_the_state_beside_it_moves(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert c.put("/collections/drift", headers=AS_WRITER).status_code == 201
        items = {"items": [{"id": "1", "text": "x"}]}
        assert c.post("/collections/drift/items", json=items, headers=AS_WRITER).status_code == 200
    assert not (tmp_path / ".o2v" / "drift" / "state.json").exists()  # nothing recorded: nothing written
    old_layout(tmp_path)
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert baseline_source(c) == "golden"
        assert c.get("/collections/drift").json()["count"] == 1
    assert not (tmp_path / "drift" / "state.json").exists()


def test_a_state_in_both_places_keeps_the_new_one(tmp_path: Path) -> None:
    old_layout(tmp_path)
    new = DriftStore.in_data_dir(tmp_path)
    old_layout(tmp_path)
    assert DriftStore.in_data_dir(tmp_path).path == new.path and (tmp_path / "drift" / "state.json").is_file()


# item 10: unkeyed callers feed only streams that exist; operators create and delete them with the key


def similarity(c: TestClient, stream: str, headers: dict[str, str] | None = None) -> Any:
    return c.post("/similarity", json={"pairs": [["a cat", "a dog"]], "stream": stream}, headers=headers or {})


def test_unkeyed_callers_cannot_squat_stream_slots(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        for i in range(40):
            error = error_of(similarity(c, f"junk{i}"), 422, "stream")
        assert "PUT /drift/streams/junk39" in error["message"]
        assert not any(name.startswith("junk") for name in c.get("/drift").json()["streams"])
        assert c.put("/drift/baseline/faq", json=BASELINE, headers=AS_WRITER).status_code == 200
        assert similarity(c, "faq").status_code == 200  # it exists now: anyone may feed it


def test_streams_unkeyed_callers_may_feed(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, api_key=WRITE, read_api_key=READ, drift_streams=["configured"]) as c:
        for stream in ("similarity", "search_top1", "configured"):
            assert similarity(c, stream, AS_READER).status_code == 200
        error_of(similarity(c, "team-a", AS_READER), 422, "stream")  # a read key does not create
        assert c.put("/drift/streams/team-a", headers=AS_WRITER).status_code == 201
        assert c.put("/drift/streams/team-a", headers=AS_WRITER).status_code == 200
        assert similarity(c, "team-a", AS_READER).status_code == 200
        assert similarity(c, "team-b", AS_WRITER).status_code == 200  # the write key creates on first use
        assert c.get("/drift", headers=AS_READER).json()["streams"]["team-a"]["n_total"] == 1


def test_operators_delete_streams_with_the_key(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, api_key=WRITE, drift_streams=["configured"]) as c:
        assert c.put("/drift/streams/old", headers=AS_WRITER).status_code == 201
        error_of(c.delete("/drift/streams/old"), 401, "Authorization")
        assert c.delete("/drift/streams/old", headers=AS_WRITER).status_code == 204
        error_of(c.delete("/drift/streams/old", headers=AS_WRITER), 404, "stream")
        for fixed in ("similarity", "configured"):
            error_of(c.delete(f"/drift/streams/{fixed}", headers=AS_WRITER), 409, "stream")
        error_of(c.put("/drift/streams/no spaces", headers=AS_WRITER), 422, "stream")
    with client(data_dir=tmp_path, api_key=WRITE) as c:
        assert "old" not in c.get("/drift").json()["streams"]


def test_without_any_key_streams_are_made_on_first_use_but_bounded(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, drift_max_streams=5) as c:  # 3 built in + 2
        assert similarity(c, "one").status_code == 200 and similarity(c, "two").status_code == 200
        error = error_of(similarity(c, "three"), 422, "stream")
        assert "at most 5" in error["message"] and "O2V_DRIFT_MAX_STREAMS" in error["message"]
        error_of(c.put("/drift/baseline/three", json=BASELINE), 422, "stream")
        assert c.delete("/drift/streams/one").status_code == 204
        assert similarity(c, "three").status_code == 200


# item 14: a text with nothing to embed is a 422 naming it


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/embed", {"texts": ["   "]}, "texts[0]"),
        ("/v1/embeddings", {"input": ["a", "b", "c", "\t\n"]}, "input[3]"),
        ("/v1/embeddings", {"input": "\u200b\u200b"}, "input[0]"),
        ("/similarity", {"pairs": [["a cat", "\ufeff \u00a0"]]}, "pairs[0][1]"),
        ("/collections/c/search", {"query": "\u3000"}, "query"),
    ],
)
def test_blank_texts_are_refused(route: str, body: dict[str, Any], field: str) -> None:
    with client() as c:
        error = error_of(c.post(route, json=body), 400 if route.startswith("/v1/") else 422, field)  # OpenAI's 400
        assert "nothing to embed" in error["message"]


def test_a_baseline_pair_with_a_blank_text_is_422(tmp_path: Path) -> None:
    pairs = [["a cat", "a dog"]] * 9 + [["a cat", " "]]
    with client(data_dir=tmp_path) as c:
        error_of(c.put("/drift/baseline/similarity", json={"pairs": pairs}), 422, "pairs[9][1]")


def test_texts_with_a_visible_character_still_embed() -> None:
    with client() as c:
        assert c.post("/embed", json={"texts": ["  a  ", "e\u0301", "\U0001f600", "\u00a0x"]}).status_code == 200


# item 16: the drift webhook never follows a redirect


@contextmanager
def http_server(status: int, location: str = "") -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering every request with `status`; yields its URL and the requests it got."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.command)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_webhook_never_follows_a_redirect(status: int) -> None:
    with http_server(200) as (target, reached), http_server(status, target) as (hook, asked):
        notifier = StatusNotifier(hook, timeout_s=2.0, retries=2, backoff_s=0.01)
        notifier.notify({"event": "drift_status_change", "stream": "similarity", "to": "drift"})
        notifier.close()
    assert (asked, reached) == (["POST"], [])  # asked once (a redirect is not retried), the target never
    assert (notifier.delivered, notifier.failed) == (0, 1)


def test_the_webhook_still_delivers_and_refuses_other_schemes() -> None:
    with http_server(204) as (hook, asked):
        notifier = StatusNotifier(hook, retries=0)
        notifier.notify({"event": "drift_status_change", "stream": "similarity", "to": "drift"})
        notifier.close()
    assert asked == ["POST"] and notifier.delivered == 1
    with pytest.raises(ValueError, match="http"):
        StatusNotifier("file:///etc/passwd")


def test_the_drift_cli_does_not_follow_a_redirect_with_the_key(tmp_path: Path) -> None:
    with http_server(200) as (target, reached), http_server(302, target) as (url, _):
        command = [sys.executable, "-m", "service.cli", "drift", "report", "--url", url.removesuffix("/hook")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={"O2V_API_KEY": WRITE})
    assert done.returncode == 1 and "302" in done.stderr and reached == []


# item 17: no empty or placeholder key; the key is a secret


@pytest.mark.parametrize("value", ["", "  ", "change-me", "CHANGEME", "secret", "password", "api_key", "xxxx"])
@pytest.mark.parametrize("name", ["O2V_API_KEY", "O2V_READ_API_KEY"])
def test_an_empty_or_placeholder_key_refuses_to_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("O2V_API_KEY", "a-real-write-key")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_serve_with_a_placeholder_key_exits_with_the_reason(tmp_path: Path) -> None:
    env = {"O2V_API_KEY": "change-me", "O2V_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "service.cli", "serve", "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0 and "O2V_API_KEY is a placeholder" in done.stderr


def test_keys_are_secret_and_a_read_key_needs_a_write_key() -> None:
    settings = Settings(api_key=WRITE, read_api_key=READ)
    assert WRITE not in repr(settings) and READ not in str(settings.model_dump())
    with pytest.raises(ValidationError, match="O2V_API_KEY"):
        Settings(read_api_key=READ)


# item 18: reads behind a key on request; probes and the scrape target stay open


def test_with_a_read_key_every_route_but_the_probes_needs_a_key(tmp_path: Path) -> None:
    with client(data_dir=tmp_path, api_key=WRITE, read_api_key=READ) as c:
        routes = [(m, p) for m, p, _ in operations(c)]
        guarded = [(m, p) for m, p in routes if p not in OPEN_PATHS]
        assert {p for _, p in routes} >= OPEN_PATHS and len(guarded) >= 15
        for method, path in guarded:
            error = error_of(c.request(method, concrete(path)), 401, "Authorization")
            assert "O2V_READ_API_KEY" in error["message"], path
        for path in OPEN_PATHS:
            assert c.get(path).status_code == 200, path
        for headers in (AS_READER, AS_WRITER):
            assert c.post("/embed", json={"texts": ["a"]}, headers=headers).status_code == 200
            assert c.get("/collections", headers=headers).status_code == 200
            assert c.get("/drift", headers=headers).status_code == 200
        error_of(c.put("/collections/c", headers=AS_READER), 401, "Authorization")  # a read key does not write
        assert c.put("/collections/c", headers=AS_WRITER).status_code == 201


# /readyz answers within a second when the server is busy


def test_readyz_answers_within_a_second_while_the_thread_pool_is_busy() -> None:
    """Tokenizing large requests fills asyncio's default executor; the readiness check once queued behind it (up to
    4.5 s measured under a full encoder queue). Here every default-executor thread is held for 3 s."""
    with client() as c:
        assert c.portal is not None
        hold = threading.Event()
        for _ in range(64):
            c.portal.start_task_soon(asyncio.to_thread, hold.wait, 3.0)
        time.sleep(0.2)
        try:
            started = time.perf_counter()
            assert c.get("/readyz").status_code == 200
            assert time.perf_counter() - started < 1.0
        finally:
            hold.set()
