"""An adaptation's HTML report and `"tune": N`, through the app: a real job (tuning trials, each a fine-tune in the
niced child) on tests/adapt_fixtures.py, its report served for the job and the model with the job result's numbers,
trial i/N in the progress, the tuning bounded, seeded, and cancellable."""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("optuna")
pytest.importorskip("torch")

from service.api.app import create_app
from service.encoders.onnx import OnnxEncoder
from service.model.adaptation import MAX_TUNE_TRIALS, REPORT, AdaptRequest, run_in_child
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR, Settings
from tests.adapt_fixtures import INTENTS, OUT_OF_SCOPE, intents
from tests.gateway_fixtures import onnx_encoder

KEY = "adapt-report-key-3Kd9"
AUTH = {"Authorization": f"Bearer {KEY}"}
FAST = {"epochs": "2", "mini_batch_size": "16"}
CELL = re.compile(r'data-key="([^"]+)">([^<]*)<')


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory(prefix="o2v-adapt-report-") as tmp:
        app = create_app(Settings(data_dir=Path(tmp), api_key=KEY), onnx_encoder())
        with TestClient(app, headers=AUTH) as client:
            assert client.put("/collections/intents").status_code in (200, 201)
            rows = [(t, label) for label, ts in INTENTS.items() for t in ts] + [(t, "oos") for t in OUT_OF_SCOPE]
            items = [{"id": f"i{n}", "text": t, "metadata": {"intent": y}} for n, (t, y) in enumerate(rows)]
            assert client.post("/collections/intents/items", json={"items": items}).status_code == 200
            yield client


def _adapt(http: TestClient, name: str, **extra: object) -> str:
    body = {"name": name, "collection": "intents", "label_key": "intent", "hyperparameters": FAST, **extra}
    answer = http.post("/models/adapt", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job"])


def _wait(http: TestClient, job: str, until: object = None, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = http.get(f"/jobs/{job}").json()
        if state["status"] != "running" or (until is not None and until(state)):  # type: ignore[operator]
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job}: {state}")


def _cells(page: str) -> dict[str, float]:
    return {key: float(value) for key, value in CELL.findall(page) if value}


def test_tuned_job_reports_its_trials_and_the_report_shows_the_result(http: TestClient) -> None:
    job = _adapt(http, "tuned", tune=2, seed=3)
    done = _wait(http, job)
    assert done["status"] == "succeeded", done
    history = done["progress"]["history"]
    assert {row["trial"] for row in history} == {1, 2} and done["progress"]["trials"] == 2  # trial i of N
    result = done["result"]
    tuning = result["tuning"]
    assert tuning["trials"] == 2 and [r["trial"] for r in tuning["rows"]] == [1, 2]
    assert set(tuning["searched"]) == {"learning_rate", "dropout", "weight_decay"}  # mini_batch_size was given
    complete = [r for r in tuning["rows"] if r["state"] == "complete"]
    best = max(complete, key=lambda r: r["objective"])
    assert tuning["best_trial"] == best["trial"]
    assert result["evaluation"]["adapted"]["knn_accuracy"] == best["objective"]  # the best trial is the model
    for name, value in tuning["rows"][tuning["best_trial"] - 1]["hyperparameters"].items():
        assert float(result["hyperparameters"][name]) == float(value)
    first = {k: float(v) for k, v in tuning["rows"][0]["hyperparameters"].items()}
    assert first == {"learning_rate": 0.01, "dropout": 0.1, "weight_decay": 0.0}  # trial 1: the untuned defaults
    card = json.loads((Path(result["path"]) / "model_card.json").read_text())
    assert card["tuning"]["rows"] == tuning["rows"]

    page = http.get(f"/jobs/{job}/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    cells = _cells(page.text)
    evaluation = result["evaluation"]
    for side in ("parent", "adapted"):
        for key, value in evaluation[side].items():
            assert cells[f"{side}.{key}"] == value, key
    assert {"parent.oos_recall", "adapted.oos_precision", "adapted.min_score"} <= set(cells)
    for row in result["history"]:
        assert cells[f"epoch{row['epoch']}.train_loss"] == row["train_loss"]
        assert cells[f"epoch{row['epoch']}.knn_accuracy"] == row["validation"]["knn_accuracy"]
    assert result["lineage"]["data"]["sha256"] in page.text and "object2vec-sts-384" in page.text
    assert f"best trial {tuning['best_trial']}" in page.text
    served = http.get("/models/tuned/report")
    assert served.status_code == 200 and served.text == page.text == (Path(result["path"]) / REPORT).read_text()

    assert http.get("/models/object2vec-sts-384/report").status_code == 404  # the bundled model has none
    assert http.get("/models/nope/report").json()["error"]["type"] == "model_not_found"
    assert http.get("/jobs/nope/report").status_code == 404


def test_tune_is_bounded_and_a_tuning_job_can_be_cancelled(http: TestClient) -> None:
    refused = http.post("/models/adapt", json={"name": "x", "collection": "intents", "label_key": "intent", "tune": 99})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "tune" and str(MAX_TUNE_TRIALS) in error["message"]
    slow = {"epochs": "100", "early_stopping_patience": "5", "early_stopping_tolerance": "0.000001"}
    job = _adapt(http, "gone", tune=MAX_TUNE_TRIALS, hyperparameters=slow)
    running = _wait(http, job, until=lambda s: (s["progress"].get("trial") or 0) >= 1)
    assert running["status"] == "running" and running["progress"]["trials"] == MAX_TUNE_TRIALS
    assert http.delete(f"/jobs/{job}").json()["status"] == "cancelled"
    assert "gone" not in {m["id"] for m in http.get("/v1/models").json()["data"]}
    assert http.get(f"/jobs/{job}/report").status_code == 404  # no report for a job that did not succeed


def test_a_seed_gives_the_same_tuned_model(tmp_path: Path) -> None:
    def tuned(name: str) -> tuple[np.ndarray, dict]:
        request = AdaptRequest(
            name, DEFAULT_MODEL_DIR, intents(oos=True), hyperparameters={"epochs": "2"}, options={"seed": 7}, tune=2
        )
        result = run_in_child(request, tmp_path / name, tmp_path / f"job-{name}", niceness=0)
        return OnnxEncoder(ModelDir.load(tmp_path / name)).embed_texts(intents().texts), result["tuning"]

    (a, trials_a), (b, trials_b) = tuned("a"), tuned("b")
    assert [r["hyperparameters"] for r in trials_a["rows"]] == [r["hyperparameters"] for r in trials_b["rows"]]
    assert trials_a["rows"][0]["hyperparameters"] != trials_a["rows"][1]["hyperparameters"]  # it searched
    np.testing.assert_allclose(a, b, atol=1e-5)
