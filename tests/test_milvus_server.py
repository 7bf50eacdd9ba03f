"""Gateways over a real Milvus server (tests/milvus_server.py): two `o2v serve` processes over one server, and a
server killed, restarted and paused under a stream of writes, and the one unpacked copy of the server's binaries
that the servers share. The behavioural suite runs on the server through the `store` fixture ("milvus-server");
these are what only a server can show."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.index.engines.milvus import embedded
from service.index.errors import InvalidRequest
from service.index.metadata import canonical
from tests.index_fixtures import SMALL, items, registry, store_env, unit_vectors
from tests.milvus_server import SHORT_SESSIONS, Server, wait_until
from tests.server_process import ServerProcess
from tests.test_index_reembed import ENCODER, OLD, SERVED, old_collection

API_KEY = "milvus-server-test-key-77c1"
KEY = {"Authorization": f"Bearer {API_KEY}"}
DIM = 16


def gateway_env(folder: Path, **store: str) -> dict[str, str]:
    """One gateway's settings: its own data directory (drift state), one worker, the store given."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"O2V_DATA_DIR": str(folder), "O2V_API_KEY": API_KEY, "O2V_WORKERS": "1", "OMP_NUM_THREADS": "1", **store}


def vectors(n: int, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32).tolist()


def test_two_gateways_share_one_server(milvus_server, tmp_path) -> None:
    """Writes through one replica are read through the other; each reads its own writes at once; a collection
    made or dropped through one is seen by the next request to the other."""
    store = store_env("milvus-server", tmp_path)
    with (
        ServerProcess(gateway_env(tmp_path / "a", **store), timeout_s=120) as a_server,
        ServerProcess(gateway_env(tmp_path / "b", **store), timeout_s=120) as b_server,
        httpx.Client(base_url=a_server.url, headers=KEY, timeout=30) as a,
        httpx.Client(base_url=b_server.url, headers=KEY, timeout=30) as b,
    ):
        assert a.put("/collections/shared").status_code == 201
        assert b.get("/collections/shared").status_code == 200, "a collection made through a is seen by b at once"
        assert b.put("/collections/shared").status_code == 200, "and b does not make it again"
        rows = vectors(40)
        for i in range(20):  # read-your-writes through one gateway, every time
            item = {"id": f"v{i}", "vector": rows[i], "metadata": {"i": i}}
            assert a.post("/collections/shared/items", json={"items": [item]}).status_code == 200
            hits = a.post("/collections/shared/search", json={"vector": rows[i], "top_k": 1}).json()["hits"]
            assert hits[0]["id"] == f"v{i}"
            assert a.post("/collections/shared/count").json()["count"] == i + 1
        assert a.delete("/collections/shared/items/v0").status_code == 204
        assert a.get("/collections/shared/items/v0").status_code == 404, "a delete is read back at once too"

        started = time.monotonic()
        wait_until(lambda: b.post("/collections/shared/count").json()["count"] == 19, timeout=10)
        lag = time.monotonic() - started
        hits = b.post("/collections/shared/search", json={"vector": rows[7], "top_k": 1}).json()["hits"]
        assert hits[0]["id"] == "v7" and lag < 6, lag  # the other replica: within Bounded's 5 s, in practice at once

        assert b.delete("/collections/shared").status_code == 204
        assert a.get("/collections/shared").status_code == 404, "a drop through b is seen by a at once"
        search = a.post("/collections/shared/search", json={"vector": rows[0]})
        assert search.status_code == 404
        assert a.get("/collections").json()["collections"] == []


def test_one_reembedding_at_a_time_across_gateways(milvus_server, tmp_path) -> None:
    """Both replicas are asked to re-embed one collection at once: one does it, the other is refused (409's
    message), the collection ends re-embedded with every item, and no read of either answers 503 meanwhile."""
    reg, _ = old_collection(tmp_path, 600, store="milvus-server")
    reg.close()
    store = store_env("milvus-server", tmp_path)
    with (
        ServerProcess(gateway_env(tmp_path / "a", **store), timeout_s=120) as a_server,
        ServerProcess(gateway_env(tmp_path / "b", **store), timeout_s=120) as b_server,
    ):
        clients = [httpx.Client(base_url=s.url, headers=KEY, timeout=30) for s in (a_server, b_server)]
        answers: list[Any] = [None, None]

        def start(i: int) -> None:
            answers[i] = clients[i].post("/collections/c/reembed")

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [answer.status_code for answer in answers] == [202, 202], [a.text for a in answers]

        def finished() -> list[dict[str, Any]] | None:
            answers = [client.get("/collections/c") for client in clients]
            # no 503 even right after the other replica's switch: a read that meets it reads again (moves.py)
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            jobs = [a.json()["reembed"] for a in answers]
            return jobs if all(job["state"] != "running" for job in jobs) else None

        jobs = wait_until(finished, timeout=240, every=0.5)
        states = sorted(job["state"] for job in jobs)
        assert states == ["done", "failed"], jobs
        refused = next(job for job in jobs if job["state"] == "failed")
        assert "being re-embedded already" in refused["error"], refused
        info = clients[0].get("/collections/c").json()
        assert info["count"] == 601 and info["model"] != OLD
        for client in clients:
            client.close()


def test_a_read_right_after_another_replica_reembedded_is_answered(milvus_server, tmp_path) -> None:
    """Replica b's handle still names the items collection that replica a's re-embedding replaces and drops (a
    Bounded catalog read a moment old does the same): each read finds the new one within the request, no 503."""
    a, _ = old_collection(tmp_path, 60, store="milvus-server")
    b = registry(tmp_path, SMALL, "milvus-server")
    handles = [b.get("c") for _ in range(5)]
    wait_until(lambda: handles[0].count({}) == 61, timeout=10)  # b reads a's writes at Bounded: a tick later
    assert handles[0].info()["model"] == OLD  # and has loaded the old items collection
    before = handles[0].target
    a.get("c").reembed(ENCODER.embed_texts, SERVED, batch_size=64)
    probe = ENCODER.embed_texts(["a probe sentence"])[0]
    info, hits, count, page, found = (
        handles[0].info(),
        handles[1].nearest(probe, 3, {}),
        handles[2].count({}),
        handles[3].scroll(None, 5, {}),
        handles[4].items(["given"]),
    )
    assert info["count"] == 61 and info["model"] == SERVED
    assert len(hits) == 3 and count == 61 and len(page) == 5 and found[0] is not None
    assert len({h.target for h in handles}) == 1 and handles[0].target != before


@pytest.fixture
def own_server(tmp_path) -> Any:
    """A server of this test's own, to pause (the run's server serves the other tests)."""
    yield from started(Server(tmp_path / "milvus"))


@pytest.fixture
def server_to_kill(tmp_path) -> Any:
    """A server of this test's own, to kill and restart: with SHORT_SESSIONS, so its collections answer again
    seconds after the restart rather than half a minute."""
    yield from started(Server(tmp_path / "milvus", SHORT_SESSIONS))


def started(server: Server) -> Any:
    server.start()
    try:
        yield server
    finally:
        server.discard()


def write_stream(client: httpx.Client, stop: threading.Event, log: list[tuple[int, int, str | None, float]]) -> None:
    """Batches of two items, one after the other, until `stop`: (batch, status, Retry-After, seconds) each."""
    rows = vectors(4096, seed=1)
    b = 0
    while not stop.is_set():
        items = [{"id": f"b{b}-{j}", "vector": rows[(2 * b + j) % 4096], "metadata": {"b": b}} for j in range(2)]
        started = time.monotonic()
        try:
            answer = client.post("/collections/c/items", json={"items": items})
            log.append((b, answer.status_code, answer.headers.get("Retry-After"), time.monotonic() - started))
        except httpx.TimeoutException:
            log.append((b, 0, None, time.monotonic() - started))
        b += 1


def acknowledged(log: list[tuple[int, int, str | None, float]]) -> set[str]:
    return {f"b{b}-{j}" for b, status, _, _ in log if status == 200 for j in range(2)}


def stored_ids(client: httpx.Client) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        page = client.post("/collections/c/scroll", json={"limit": 500, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        ids |= {item["id"] for item in body["items"]}
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


def test_a_killed_server_loses_nothing_acknowledged_and_the_gateway_reconnects(server_to_kill, tmp_path) -> None:
    """SIGKILL of the server under a stream of writes, then a restart: writes in flight answer 503 with
    Retry-After (never 500), /readyz says the store is down, every acknowledged write is there after the restart,
    and the same gateway process serves again without a restart of its own."""
    store = {"O2V_VECTOR_STORE": "milvus", "O2V_MILVUS_URI": server_to_kill.uri, "O2V_MILVUS_TIMEOUT_S": "3"}
    with (
        ServerProcess(gateway_env(tmp_path / "gw", **store), timeout_s=120) as gateway,
        httpx.Client(base_url=gateway.url, headers=KEY, timeout=60) as client,
    ):
        assert client.put("/collections/c").status_code == 201
        stop, log = threading.Event(), []
        writer = threading.Thread(target=write_stream, args=(client, stop, log))
        writer.start()
        try:
            wait_until(lambda: len(acknowledged(log)) >= 40, timeout=60)
            server_to_kill.kill()
            wait_until(lambda: any(status != 200 for _, status, _, _ in log), timeout=30)
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "store" in ready.text, ready.text
            server_to_kill.start()
            down = len(log)
            wait_until(lambda: any(status == 200 for _, status, _, _ in log[down:]), timeout=120, every=0.5)
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30)
        finally:
            stop.set()
            writer.join(60)
        statuses = Counter(status for _, status, _, _ in log)
        assert set(statuses) <= {200, 503}, statuses
        assert all(retry for _, status, retry, _ in log if status == 503), "every 503 says when to retry"
        assert statuses[503] > 0, statuses
        assert acknowledged(log) <= stored_ids(client), "an acknowledged write was lost"


def test_a_paused_server_gives_503_in_time_not_a_hung_request(own_server, tmp_path) -> None:
    """SIGSTOP for 10 s: requests answer 503 within about O2V_MILVUS_TIMEOUT_S, then serve again after SIGCONT."""
    store = {"O2V_VECTOR_STORE": "milvus", "O2V_MILVUS_URI": own_server.uri, "O2V_MILVUS_TIMEOUT_S": "2"}
    with (
        ServerProcess(gateway_env(tmp_path / "gw", **store), timeout_s=120) as gateway,
        httpx.Client(base_url=gateway.url, headers=KEY, timeout=30) as client,
    ):
        assert client.put("/collections/c").status_code == 201
        rows = vectors(8)
        first = [{"id": "a", "vector": rows[0]}]
        assert client.post("/collections/c/items", json={"items": first}).status_code == 200
        own_server.pause()
        paused = time.monotonic()
        answers = []
        try:
            while time.monotonic() - paused < 10:
                started = time.monotonic()
                search = client.post("/collections/c/search", json={"vector": rows[1]})
                answers.append((search.status_code, search.headers.get("Retry-After"), time.monotonic() - started))
        finally:
            own_server.resume()
        assert answers and all(status == 503 and retry for status, retry, _ in answers), answers
        assert max(seconds for _, _, seconds in answers) < 8, answers
        wait_until(lambda: client.post("/collections/c/search", json={"vector": rows[0]}).status_code == 200, 60)
        assert client.post("/collections/c/search", json={"vector": rows[0]}).json()["hits"][0]["id"] == "a"


def test_the_engine_reads_its_own_writes_without_strong_searches(milvus_server, tmp_path) -> None:
    """Searches of a collection this process wrote are Session, others Bounded; Strong only after a delete."""
    collections = registry(tmp_path, store="milvus-server")
    collection, _ = collections.create("c")
    target = collection.target
    assert collections.connection.level(target) == "Bounded"
    collection.upsert(items(3), unit_vectors(3))
    assert collections.connection.level(target) == "Session"
    assert collection.delete("item-0") and collections.connection.level(target) == "Strong"
    assert collection.items(["item-0"]) == [None]
    collection.upsert(items(1, start=5), unit_vectors(1, seed=5))
    assert collections.connection.level(target) == "Session"
    other = registry(tmp_path, store="milvus-server").get("c")
    assert other.connection.level(target) == "Bounded"
    wait_until(lambda: other.info()["count"] == 3, timeout=10)


def test_every_index_kind_the_server_builds_answers_and_the_others_are_422(milvus_server, tmp_path) -> None:
    """The behavioural suite runs on the server once per test (conftest); here each index kind does: exact top
    hits at these sizes (a 2.3 server: no INVERTED index on `tags`, filters evaluated without one), and a kind the
    server cannot build refused naming `index`."""
    collections = registry(tmp_path, store="milvus-server")
    rows = unit_vectors(300, seed=3)
    for kind in ("flat", "hnsw", "ivf", "ivf_pq"):
        collection, _ = collections.create(kind.replace("_", "-"), kind)
        collection.upsert(items(300), rows)
        top = collection.nearest(rows[7], 3, {})
        assert top[0].id == "item-7" and top[0].score == pytest.approx(1.0, abs=1e-2), (kind, top)
        odd = collection.nearest(rows[7], 5, {"parity": canonical(1)})
        assert len(odd) == 5 and all(hit.metadata["parity"] == 1 for hit in odd), (kind, odd)
    version = collections.connection.version
    collection, _ = collections.create("sq", "hnsw_sq8")
    if version < (2, 5):
        with pytest.raises(InvalidRequest) as refused:
            collection.upsert(items(3), unit_vectors(3))
        assert refused.value.field == "index" and "HNSW_SQ" in refused.value.message


def test_servers_share_one_unpacked_copy_of_the_binaries(milvus_server, tmp_path) -> None:
    shared = embedded.binaries()
    assert shared is not None and (shared / "milvus").is_file()
    assert (milvus_server.base / "bin").resolve() == shared.resolve()
    assert (Server(tmp_path / "another").base / "bin").resolve() == shared.resolve()


@pytest.mark.parametrize("kind", ["open to all", "a link"])
def test_a_shared_copy_not_this_users_alone_is_not_run(milvus_server, tmp_path, monkeypatch, kind) -> None:
    import milvus

    monkeypatch.setattr(embedded.tempfile, "gettempdir", lambda: str(tmp_path))
    planted = tmp_path / f"o2v-milvus-{milvus.__version__}-{os.getuid()}"
    if kind == "a link":
        (tmp_path / "elsewhere").mkdir()
        planted.symlink_to(tmp_path / "elsewhere")
    else:
        planted.mkdir()
        planted.chmod(0o777)
    assert embedded.binaries() is None
    assert not (Server(tmp_path / "server").base / "bin").exists()  # the package unpacks its own at start
