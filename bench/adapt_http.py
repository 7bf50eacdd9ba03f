"""`python -m bench.adapt --http`: issue 25's held-out check, replayed on CLINC150 through a real `o2v serve`.

Exactly the HTTP flow a team (and the private check) runs: PUT the collection, POST its items with
`{"intent": label}` metadata (CLINC150 train, its `oos` items included, as a team's data would be), `POST
/models/adapt {"name", "collection", "label_key": "intent"}`, poll `GET /jobs/{id}`, `POST
/collections/{c}/reembed {"model": name}`, poll `GET /collections/{c}`, then `POST /collections/{c}/classify`
with k=10 for every CLINC150 test utterance. The service holds out its own stratified split of the collection for
early stopping and the calibrated min_score; the test split is only ever a query. In-scope accuracy counts the
answers equal to the gold intent (an out-of-scope answer, null or `oos`, is wrong); out-of-scope recall counts
the `oos` test utterances answered null or `oos`, as the collection answers by default (min_score 0: its items'
`oos` label is the only out-of-scope answer); both are also given at the job's calibrated min_score, from the same
answers' confidences. The parent is measured first, by the same classify requests before the re-embed. The re-embed
asks `adopt_min_score`, so the adapted model's answers are taken twice: with `min_score` 0 in each request (the
collection's default before), and as the collection answers without one (`served`: the adopted threshold applied
by the route itself).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.classify_http import Turn, run_requests
from service.datasets import read_clinc
from service.evaluation import OOS
from tests.server_process import ServerProcess

KEY = "bench-adapt-http-key"
COLLECTION = "clinc"
MODEL = "clinc-http"
BATCH = 256
"""Items per POST (O2V_MAX_REQUEST_TEXTS' default)."""
JOB_TIMEOUT_S = 1800.0
"""The cost target is 15 minutes; twice that before the bench gives up on the job."""


def _poll(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = fetch()
        if done(state):
            return state
        time.sleep(1.0)
    raise TimeoutError(f"not done after {timeout_s:.0f} s: {state}")


def _classify(
    url: str, queries: list[tuple[str, str]], concurrency: int, min_score: float | None = None
) -> tuple[list[tuple[Any, float]], float]:
    """Every query classified with k=10 as a client sends it (with `min_score` when given, else the collection's):
    (label, confidence) each, and the seconds it took."""
    asked = {"label_key": "intent", "k": 10} | ({} if min_score is None else {"min_score": min_score})
    bodies = [orjson.dumps({"text": text, **asked}) for text, _ in queries]
    turn = Turn("adapt")
    started = time.perf_counter()
    answers, _ = asyncio.run(run_requests(url, bodies, f"/collections/{COLLECTION}/classify", concurrency, turn))
    seconds = time.perf_counter() - started
    if turn.errors:
        raise RuntimeError(f"{turn.errors} classify requests failed; the first: {turn.first_error}")
    return [(a["label"], float(a["confidence"])) for a in answers if isinstance(a, dict)], seconds


def score(answers: list[tuple[Any, float]], queries: list[tuple[str, str]], min_score: float | None) -> dict:
    """In-scope accuracy of the answers as given (an out-of-scope answer, null or `oos`, is wrong) and out-of-scope
    recall; then both again had the collection applied the job's calibrated `min_score` (answers whose confidence
    is below it turn null: the classify route's rule, computed from the same answers)."""
    gold = [y for _, y in queries]
    in_scope = [i for i, y in enumerate(gold) if y != OOS]
    oos = [i for i, y in enumerate(gold) if y == OOS]

    def rates(labels: list[Any]) -> tuple[float, float]:
        accuracy = sum(labels[i] == gold[i] for i in in_scope) / len(in_scope)
        recall = sum(labels[i] in (None, OOS) for i in oos) / max(len(oos), 1)
        return round(accuracy, 4), round(recall, 4)

    out: dict[str, Any] = dict(zip(("clinc_acc", "oos_recall"), rates([label for label, _ in answers]), strict=True))
    if min_score is not None:
        held = [label if confidence >= min_score else None for label, confidence in answers]
        acc, recall = rates(held)
        out.update(min_score=min_score, clinc_acc_at_min_score=acc, oos_recall_at_min_score=recall)
    return out


def _upload(http: httpx.Client, rows: list[tuple[str, str]]) -> None:
    http.put(f"/collections/{COLLECTION}").raise_for_status()
    items = [{"id": f"u{i}", "text": t, "metadata": {"intent": y}} for i, (t, y) in enumerate(rows)]
    for s in range(0, len(items), BATCH):
        http.post(f"/collections/{COLLECTION}/items", json={"items": items[s : s + BATCH]}).raise_for_status()


def run_flow(args: argparse.Namespace) -> dict[str, Any]:
    """The whole flow against one fresh server; each phase's wall seconds, the job's result and both models'
    classify scores."""
    train, test = read_clinc("train"), read_clinc("test")
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-adapt-http-") as tmp:
        env = {
            "O2V_DATA_DIR": str(Path(tmp) / "data"),
            "O2V_API_KEY": KEY,
            "O2V_ADAPT_THREADS": str(args.threads),
            "O2V_SHARED_DATA": os.environ.get("O2V_SHARED_DATA", ""),
        }
        headers = {"Authorization": f"Bearer {KEY}"}
        with (
            ServerProcess(env, timeout_s=180) as server,
            httpx.Client(base_url=server.url, headers=headers, timeout=120) as http,
        ):
            started = time.perf_counter()
            _upload(http, train)
            seconds["upload"] = time.perf_counter() - started
            parent_answers, _ = _classify(server.url, test, args.concurrency)
            body = {"name": MODEL, "collection": COLLECTION, "label_key": "intent", "seed": args.seed}
            if args.tune:
                body["tune"] = args.tune
            started = time.perf_counter()
            answer = http.post("/models/adapt", json=body)
            if answer.status_code != 202:
                raise RuntimeError(f"POST /models/adapt: {answer.status_code} {answer.text}")
            job_id = answer.json()["job"]
            job = _poll(lambda: http.get(f"/jobs/{job_id}").json(), lambda s: s["status"] != "running", JOB_TIMEOUT_S)
            seconds["adapt_job"] = time.perf_counter() - started
            if job["status"] != "succeeded":
                raise RuntimeError(f"adapt job {job['status']}: {job.get('error')}")
            started = time.perf_counter()
            http.post(
                f"/collections/{COLLECTION}/reembed", json={"model": MODEL, "adopt_min_score": True}
            ).raise_for_status()
            info = _poll(
                lambda: http.get(f"/collections/{COLLECTION}").json(),
                lambda s: s.get("reembed", {}).get("state") != "running",
                600,
            )
            seconds["reembed"] = time.perf_counter() - started
            if info["reembed"]["state"] != "done":
                raise RuntimeError(f"reembed ended {info['reembed']}")
            adapted_answers, seconds["classify"] = _classify(server.url, test, args.concurrency, min_score=0.0)
            served_answers, _ = _classify(server.url, test, args.concurrency)
    evaluation = job["result"]["evaluation"]
    return {
        "items": len(train),
        "queries": len(test),
        "parent": score(parent_answers, test, evaluation["parent"].get("min_score")),
        "adapted": score(adapted_answers, test, evaluation["adapted"].get("min_score")),
        "served": {"min_score": info.get("min_score"), **score(served_answers, test, None)},
        "collection_model": info.get("model"),
        "job": {k: job["result"][k] for k in ("evaluation", "best_epoch", "epochs_run", "train_seconds")},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
