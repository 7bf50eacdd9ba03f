"""Limits under the process's own limits: a real `o2v serve` under `ulimit -n 1024` and a 2 GiB address-space limit (the
Deployment's memory limit) takes the attacks probing found and answers each with a 4xx or a 503, never dies."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server_process import ServerProcess, free_port

KEY = "hardening-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOFILE = 1024
ADDRESS_SPACE = 2 * 1024**3
LIMITED_SERVE = (
    "import resource, sys, runpy\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE}))\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))\n"
    "sys.argv = ['o2v', 'serve', '--host', '127.0.0.1', '--port', sys.argv[1]]\n"
    "runpy.run_module('service.cli', run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    port = free_port()
    env = {"O2V_DATA_DIR": str(tmp_path_factory.mktemp("limited")), "O2V_API_KEY": KEY}
    with ServerProcess(env, command=[sys.executable, "-c", LIMITED_SERVE, str(port)], port=port) as proc:
        yield proc


def _alive(server: ServerProcess) -> None:
    assert server.process is not None and server.process.poll() is None, "the server process died"
    started = time.monotonic()
    answer = httpx.get(f"{server.url}/readyz", timeout=5)
    assert answer.status_code == 200 and time.monotonic() - started < 1.0


def test_limits_are_in_force(server: ServerProcess) -> None:
    assert server.process is not None
    soft, _ = resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE)
    assert soft == NOFILE
    assert resource.prlimit(server.process.pid, resource.RLIMIT_AS)[0] == ADDRESS_SPACE


def test_a_6_mb_invocations_body_is_refused_at_once(server: ServerProcess) -> None:
    body = json.dumps({"instances": [{"in0": [1037]}] * 413_333}).encode()[: 6 * 1024 * 1024 - 2]
    body = body[: body.rfind(b"}") + 1] + b"]}"
    started = time.monotonic()
    answer = httpx.post(
        f"{server.url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert answer.status_code in (413, 422), answer.text[:300]
    assert time.monotonic() - started < 10
    assert "instances" in answer.json()["error"]["message"]
    _alive(server)


@pytest.mark.parametrize("media", ["application/json", "application/jsonlines"])
def test_deeply_nested_json_is_a_400(server: ServerProcess, media: str) -> None:
    answer = httpx.post(
        f"{server.url}/invocations",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"Content-Type": media},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text[:300]
    _alive(server)


def test_an_index_faiss_cannot_build_is_refused(server: ServerProcess) -> None:
    answer = httpx.put(f"{server.url}/collections/c", json={"index": "hnsw", "m": 1}, headers=AUTH, timeout=10)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "m", answer.text
    _alive(server)


def test_more_collections_than_descriptors_never_break_the_process(server: ServerProcess) -> None:
    """400 collections × 3 SQLite files would need 1,200 descriptors: idle ones must be closed (or refused with 503)."""
    statuses: set[int] = set()
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        for i in range(400):
            put = client.put(f"/collections/fd{i}", json={})
            items = {"items": [{"id": "a", "text": f"text number {i}"}]}
            up = client.post(f"/collections/fd{i}/items", json=items) if put.status_code < 300 else put
            statuses |= {put.status_code, up.status_code}
            assert put.status_code < 500 or put.status_code == 503, put.text
            assert up.status_code < 500 or up.status_code == 503, up.text
        listing = client.get("/collections")
        assert listing.status_code == 200, listing.text
        assert len(listing.json()["collections"]) == 400
        hit = client.post("/collections/fd7/search", json={"query": "text number 7", "top_k": 1})
        assert hit.status_code == 200 and hit.json()["hits"][0]["id"] == "a"
    assert statuses <= {200, 201, 503}, statuses
    assert server.process is not None
    open_fds = len(list(Path(f"/proc/{server.process.pid}/fd").iterdir()))
    assert open_fds < NOFILE
    _alive(server)
