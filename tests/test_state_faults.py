"""The service's own state on a bad day (issue 23, findings 5, 8, 11 and the stream race): damaged drift state or
model card never stops a start, O2V_WORKERS > 1 with the drift monitor on is refused with a message, baseline
uploads run on threads of their own, and a stream created and deleted at once never answers 500."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.drift.store import STATE_DIR, STATE_FILE
from tests.gateway_fixtures import model_copy
from tests.server_process import ServerProcess
from tests.test_collections_api import API_KEY, KEY, REVIEWS
from tests.test_collections_bad_input import app_settings, reviews

REPO = Path(__file__).resolve().parent.parent
SCORES = [0.4 + 0.002 * i for i in range(200)]

# -- finding 8: damaged state and card


def saved_state(data_dir: Path) -> dict:
    """A real state file: one uploaded baseline, written by the app itself."""
    with reviews(data_dir) as client:
        assert client.put("/drift/baseline/similarity", json={"scores": SCORES}, headers=KEY).status_code == 200
    return json.loads((data_dir / STATE_DIR / STATE_FILE).read_text())


def one_score(state: dict) -> str:
    state["streams"]["similarity"]["baseline"]["scores"] = [0.5]
    return json.dumps(state)


def wrong_type(state: dict) -> str:
    state["streams"] = 5
    return json.dumps(state)


DAMAGE = {
    "truncated": lambda state: json.dumps(state)[:100],
    "empty": lambda state: "",
    "list": lambda state: "[]",
    "wrong type": wrong_type,
    "one-score baseline": one_score,
    "version 2": lambda state: json.dumps({**state, "version": 2}),
    "not UTF-8": lambda state: "\udcff",
}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_drift_state_is_set_aside_and_the_service_starts(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = saved_state(tmp_path)
    path = tmp_path / STATE_DIR / STATE_FILE
    path.write_bytes(DAMAGE[how](state).encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING), reviews(tmp_path) as client:
        assert client.get("/drift").status_code == 200
        assert client.get("/collections").status_code == 200
        assert client.post("/embed", json={"texts": ["still serving"]}).status_code == 200
        assert client.put("/drift/baseline/similarity", json={"scores": SCORES}, headers=KEY).status_code == 200
    aside = list(path.parent.glob(f"{STATE_FILE}.damaged-*"))
    assert len(aside) == 1, list(path.parent.iterdir())
    warned = [r.getMessage() for r in caplog.records if "drift_state_damaged" in r.getMessage()]
    assert warned and str(path) in warned[0] and str(aside[0]) in warned[0]
    assert json.loads(path.read_text())["version"] == 1  # the fresh state saved over it


@pytest.mark.parametrize("card", ["{garbled", "[]", '{"name": "x", "validation_score_distribution": [1, 2]}'])
def test_a_garbled_model_card_serves_without_it(tmp_path: Path, card: str, caplog: pytest.LogCaptureFixture) -> None:
    model = model_copy(tmp_path, without=("model_card.json",))
    (model / "model_card.json").write_text(card)
    with caplog.at_level(logging.WARNING):
        app = create_app(app_settings(tmp_path / "data", model_dir=model))
        with TestClient(app) as client:
            assert client.post("/embed", json={"texts": ["a card is only a description"]}).status_code == 200
            assert client.get("/drift").status_code == 200
            assert client.get("/healthz").status_code == 200
    warned = [r.getMessage() for r in caplog.records if "model_card.json" in r.getMessage()]
    assert warned, [r.getMessage() for r in caplog.records]


# -- finding 5: workers and the drift monitor


def serve(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_two_workers_with_the_drift_monitor_on_are_refused_with_a_message(tmp_path: Path) -> None:
    done = serve({"O2V_WORKERS": "2", "O2V_DATA_DIR": str(tmp_path)}, 0)
    assert done.returncode != 0
    assert "O2V_WORKERS=2" in done.stderr and "O2V_DRIFT_ENABLED=false" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_two_workers_serve_with_the_drift_monitor_off(tmp_path: Path) -> None:
    env = {"O2V_WORKERS": "2", "O2V_DRIFT_ENABLED": "false", "O2V_DATA_DIR": str(tmp_path), "O2V_API_KEY": API_KEY}
    with ServerProcess(env, timeout_s=120) as server:
        assert httpx.get(f"{server.url}/drift", timeout=10).status_code == 404
        answer = httpx.post(f"{server.url}/embed", json={"texts": ["two workers"]}, timeout=30)
        assert answer.status_code == 200
    assert not (tmp_path / STATE_DIR / STATE_FILE).exists()


def test_every_documented_multi_worker_command_turns_the_drift_monitor_off() -> None:
    """The docs' Docker example once ran O2V_WORKERS=2 with the monitor on, which lost acknowledged baselines."""
    for doc in [REPO / "README.md", REPO / "Dockerfile", *sorted((REPO / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            workers = re.search(r"O2V_WORKERS=\"?(\d+)", line)
            if workers and int(workers.group(1)) > 1:
                assert "O2V_DRIFT_ENABLED=false" in line, f"{doc.name}: {line}"


# -- finding 11 and the stream race: a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"O2V_DATA_DIR": str(tmp_path_factory.mktemp("state")), "O2V_API_KEY": API_KEY}
    with ServerProcess(env) as proc:
        assert httpx.put(f"{proc.url}/collections/reviews", headers=KEY, timeout=30).status_code == 201
        body = {"items": [{"id": i, "text": t, "metadata": m} for i, t, m in REVIEWS]}
        assert httpx.post(f"{proc.url}/collections/reviews/items", json=body, headers=KEY, timeout=30).is_success
        yield proc


def test_creating_and_deleting_one_stream_at_once_never_answers_500(server: ServerProcess) -> None:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer(method: str) -> None:
        """One client per thread, as a real caller keeps one: a new client per request spent the test's CPU on
        building TLS contexts for plain HTTP."""
        with httpx.Client(base_url=server.url, headers=KEY, timeout=60) as http:
            for _ in range(40):
                status = http.request(method, "/drift/streams/racing").status_code
                with lock:
                    statuses[status] += 1

    threads = [threading.Thread(target=hammer, args=(m,)) for m in ("PUT", "DELETE", "PUT", "DELETE")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses[201] + statuses[200] >= 1 and statuses[204] >= 1, statuses
    assert 500 not in statuses and set(statuses) <= {200, 201, 204, 404, 409}, statuses


def test_a_search_stays_fast_while_big_baseline_uploads_run(server: ServerProcess) -> None:
    scores = [round(0.3 + 0.6 * ((i * 7919) % 100_000) / 100_000, 6) for i in range(100_000)]
    body = json.dumps({"scores": scores})
    headers = {**KEY, "Content-Type": "application/json"}

    def upload(n: int) -> httpx.Response:
        return httpx.put(f"{server.url}/drift/baseline/big{n}", content=body, headers=headers, timeout=300)

    with ThreadPoolExecutor(8) as pool:
        uploads = [pool.submit(upload, n) for n in range(8)]
        time.sleep(1.0)  # the bodies are in and the simulations running
        timings = []
        for _ in range(3):
            started = time.monotonic()
            found = httpx.post(f"{server.url}/collections/reviews/search", json={"query": "battery"}, timeout=120)
            timings.append(time.monotonic() - started)
            assert found.status_code == 200
        answers = [u.result() for u in uploads]
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and statuses[200] >= 1, statuses
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 503)
    assert max(timings) < 5.0, f"searches took {timings} s while baselines were simulated"
