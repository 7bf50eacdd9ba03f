"""Adaptation end to end through `o2v serve` in a real uvicorn process: a collection of labelled items, POST
/models/adapt, the job polled to its result while /readyz stays fast, bad input refused, promotion, cancellation
leaving no model, and a restart failing the job it found running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("torch")

from service.model.jobs import AdaptJobs
from tests.adapt_fixtures import INTENTS, OUT_OF_SCOPE
from tests.server_process import ServerProcess

KEY = {"Authorization": "Bearer adapt-e2e-key-7Zp4w"}
FAST = {"epochs": "2", "mini_batch_size": "16"}


def _poll(http: httpx.Client, job: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = http.get(f"/jobs/{job}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            return state
        started = time.perf_counter()
        assert http.get("/readyz").status_code == 200
        assert time.perf_counter() - started < 1.0  # serving keeps its latency while the job trains
        time.sleep(0.5)
    raise AssertionError(f"job {job} still {state['status']} after {timeout_s} s")


def test_adapt_flow_over_http(tmp_path: Path) -> None:
    env = {"O2V_DATA_DIR": str(tmp_path), "O2V_API_KEY": "adapt-e2e-key-7Zp4w", "O2V_ONNX_INTRA_OP_THREADS": "1"}
    with ServerProcess(env) as server, httpx.Client(base_url=server.url, timeout=60, headers=KEY) as http:
        assert http.put("/collections/intents").status_code in (200, 201)
        items = [
            {"id": f"{label}-{i}", "text": text, "metadata": {"intent": label}}
            for label, texts in {**INTENTS, "oos": OUT_OF_SCOPE}.items()  # oos: the job calibrates a min_score
            for i, text in enumerate(texts)
        ]
        assert http.post("/collections/intents/items", json={"items": items}).status_code == 200
        body = {"name": "intents-v1", "collection": "intents", "label_key": "intent", "hyperparameters": FAST}

        assert http.post("/models/adapt", json={**body, "collection": "nope"}).status_code == 404
        assert http.post("/models/adapt", json={**body, "name": "../x"}).status_code == 422
        assert http.post("/models/adapt", json={**body, "name": "object2vec-sts-384"}).status_code == 409
        missing = http.post("/models/adapt", json={**body, "label_key": "topic"})
        assert missing.status_code == 422
        assert f"{len(items)} of {len(items)} items" in missing.json()["error"]["message"]
        lonely = [{"id": "lonely", "text": "play some jazz", "metadata": {"intent": "music"}}]
        assert http.post("/collections/intents/items", json={"items": lonely}).status_code == 200
        few = http.post("/models/adapt", json=body)
        assert few.status_code == 422 and "'music': 1" in few.json()["error"]["message"]
        assert http.delete("/collections/intents/items/lonely").status_code == 204
        assert httpx.post(f"{server.url}/models/adapt", json=body).status_code == 401  # keyed
        assert http.post("/models/adapt", json={"name": "p", "pairs": [["a", "b", 2.0]]}).status_code == 422
        one_negative = {"name": "p", "pairs": [["a", "b", 1], ["c", "d", 1], ["e", "f", 0]]}
        answer = http.post("/models/adapt", json=one_negative)
        assert answer.status_code == 422 and "'0': 1" in answer.json()["error"]["message"]
        assert http.post("/models/adapt", json={"name": "p"}).status_code == 422  # neither collection nor pairs

        started = http.post("/models/adapt", json=body)
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        assert http.post("/models/adapt", json={**body, "name": "second"}).status_code == 409  # one job at a time
        assert http.post("/embed", json={"texts": ["still serving"]}).status_code == 200
        done = _poll(http, job)
        assert done["status"] == "succeeded", done
        assert [row["epoch"] for row in done["progress"]["history"]] == [0, 1, 2]
        evaluation = done["result"]["evaluation"]
        assert {"knn_accuracy"} <= set(evaluation["parent"]) and {"knn_accuracy"} <= set(evaluation["adapted"])
        assert http.post("/models/adapt", json=body).status_code == 409  # the name is taken now

        assert http.post("/collections/intents/reembed", json={"model": "nope"}).status_code == 404
        uncalibrated = http.post("/collections/intents/reembed", json={"adopt_min_score": True})  # the bundled model
        assert uncalibrated.status_code == 422 and uncalibrated.json()["error"]["field"] == "adopt_min_score"
        adopt = {"model": "intents-v1", "adopt_min_score": True}
        assert http.post("/collections/intents/reembed", json={**adopt, "adopt_min_score": "yes"}).status_code == 422
        calibrated = evaluation["adapted"]["min_score"]
        started = http.post("/collections/intents/reembed", json=adopt)
        assert started.status_code == 202 and started.json()["min_score"] == calibrated, started.text
        deadline = time.monotonic() + 120
        while (info := http.get("/collections/intents").json())["reembed"]["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert info["reembed"]["state"] == "done" and info["model"].startswith("intents-v1@"), info
        assert info["min_score"] == calibrated  # classify's default for the collection from now on
        for text in ("is it raining", "what is the capital of peru", "how many legs does a spider have"):
            answer = http.post("/collections/intents/classify", json={"text": text, "label_key": "intent"}).json()
            assert (answer["label"] is None) == (answer["confidence"] < calibrated), answer
        query = {"text": "is it raining", "label_key": "intent", "k": 3, "min_score": 0}
        answer = http.post("/collections/intents/classify", json=query)
        assert answer.status_code == 200 and answer.json()["label"] == "weather", answer.text  # embedded by intents-v1
        new = [{"id": "new", "text": "what's my balance", "metadata": {"intent": "balance"}}]
        assert http.post("/collections/intents/items", json={"items": new}).status_code == 200  # intents-v1 too
        hits = http.post("/collections/intents/search", json={"query": "what's my balance", "top_k": 1}).json()["hits"]
        assert hits[0]["id"] == "new" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert http.get("/readyz").json()["model"] == "object2vec-sts-384"
        assert http.post("/models/intents-v1/promote").json()["default_model"] == "intents-v1"
        assert http.get("/readyz").json() == {"status": "ready", "model": "intents-v1", "backend": "onnx"}

        cancelled = http.post("/models/adapt", json={**body, "name": "gone", "hyperparameters": {"epochs": "50"}})
        gone = cancelled.json()["job"]
        assert http.delete(f"/jobs/{gone}").json()["status"] == "cancelled"
        assert "gone" not in {m["id"] for m in http.get("/v1/models").json()["data"]}
        assert http.post("/models/gone/promote").status_code == 409  # its job did not succeed
        assert http.get("/jobs/nope").status_code == 404


def test_a_restart_fails_the_job_it_found_running(tmp_path: Path) -> None:
    job_dir = tmp_path / ".o2v" / "jobs" / "abc123"
    job_dir.mkdir(parents=True)
    (job_dir / "request.json").write_text(json.dumps({"hyperparameters": {}}))
    state = {"id": "abc123", "model": "m", "status": "running", "pid": 999_999_999}
    (job_dir / "state.json").write_text(json.dumps(state))
    jobs = AdaptJobs(tmp_path)
    assert jobs.recover() == ["abc123"]
    status = jobs.status("abc123")
    assert status["status"] == "failed" and "restarted" in status["error"]
    assert jobs.failed_model("m") == "abc123"
