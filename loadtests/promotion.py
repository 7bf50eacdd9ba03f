"""Serving while the default model switches and while an adaptation job trains, against a real `o2v serve`.

    python -m loadtests.promotion                     # about three minutes
    python -m loadtests.promotion --users 8 --during 40 --promotions 8 --json bench/results/promotion.json

1. The server (keyed, a temporary data directory) gets the load test's collections (loadtests/plan.py), and a
   second model is made the way a team makes one: `POST /models/adapt` on the intents collection's `label`s (a
   short job: 2 epochs), polled to `succeeded`.
2. A plain `locust -f loadtests/locustfile.py --headless` run in three phases of the same users: before, during
   and after the promotions. During the middle phase the default model is switched back and forth with the keyed
   `POST /models/{name}/promote`, each time to the `previous` model the last answer named (the rollback). Beside
   locust, one checker posts /v1/embeddings without a model back to back: every answer must name a model and carry
   exactly that model's vectors (a request that started on one model and finished on the other, or an error, is
   counted), and both models must have answered it.
3. A second, longer adaptation job trains in the server while /readyz is called every 0.25 s and /v1/embeddings
   back to back; the same two probes run first for as long without a job (the machine's own noise, side by side).

Targets (issue 25): 0 failed requests during promotion (locust's failures, 503s included, and the checker's), and
while a job trains /readyz under 1 s with embeddings still served (0 failures). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.tables import print_table
from loadtests.plan import load_collections
from loadtests.pools import load
from loadtests.runner import read_stats, run_locust
from tests.server_process import ServerProcess

KEY = "bench-promotion-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADAPTED = "team-intents"
CHECK_TEXTS = ["what is my balance", "wake me up at seven", "is it raining in paris", "book a table for two"]
READY_EVERY_S = 0.25


def poll_job(http: httpx.Client, job: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = http.get(f"/jobs/{job}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            return dict(state)
        time.sleep(1.0)
    raise RuntimeError(f"job {job} did not finish in {timeout_s:.0f} s")


def adapt(http: httpx.Client, name: str, epochs: int) -> str:
    body = {"name": name, "collection": "intents", "label_key": "label", "hyperparameters": {"epochs": str(epochs)}}
    answer = http.post("/models/adapt", json=body, headers=AUTH)
    if answer.status_code != 202:
        raise RuntimeError(f"POST /models/adapt answered {answer.status_code}: {answer.text}")
    return str(answer.json()["job"])


def ms_stats(times_s: list[float]) -> dict[str, float | None]:
    if not times_s:
        return {"median_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.array(times_s) * 1000
    return {
        "median_ms": round(float(np.median(ms)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


class Checker(threading.Thread):
    """/v1/embeddings (no model named: the default) back to back: each answer's vectors must be exactly those of the
    model it names, so a request that mixed the two models, or failed, is counted. A fresh text in each request
    misses the embedding cache, so every request goes through the model's micro-batcher."""

    def __init__(self, url: str, references: dict[str, np.ndarray]) -> None:
        super().__init__(name="checker", daemon=True)
        self.url, self.references = url, references
        self.stop = threading.Event()
        self.answers: list[tuple[float, float, str]] = []  # (time.time(), seconds, model)
        self.failures: list[tuple[float, str]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    fresh = f"check request {len(self.answers) + len(self.failures)} at {time.time()}"
                    answer = http.post("/v1/embeddings", json={"input": [*CHECK_TEXTS, fresh]})
                except httpx.HTTPError as exc:
                    self.failures.append((time.time(), f"{type(exc).__name__}: {exc}"))
                    continue
                seconds = time.perf_counter() - started
                if answer.status_code != 200:
                    self.failures.append((time.time(), f"HTTP {answer.status_code}: {answer.text[:200]}"))
                    continue
                body = answer.json()
                vectors = np.array([row["embedding"] for row in body["data"][: len(CHECK_TEXTS)]])
                reference = self.references.get(body["model"])
                if reference is None or not np.allclose(vectors, reference, atol=1e-4):
                    self.failures.append((time.time(), f"the vectors are not those of {body['model']!r}"))
                self.answers.append((time.time(), seconds, body["model"]))

    def window(self, start: float, end: float) -> dict[str, Any]:
        """The answers and failures between two times: count, per model, failures, latency."""
        answers = [a for a in self.answers if start <= a[0] < end]
        models: dict[str, int] = {}
        for _, _, model in answers:
            models[model] = models.get(model, 0) + 1
        failures = [f for t, f in self.failures if start <= t < end]
        return {
            "requests": len(answers) + len(failures),
            "failures": len(failures),
            "by_model": models,
            **ms_stats([s for _, s, _ in answers]),
            "first_failure": failures[0] if failures else None,
        }


def locust_started(out: Path, timeout_s: float = 120) -> float:
    """When locust's run began: the first row of its stats history (written each second from the test's start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(FileNotFoundError, StopIteration, KeyError, ValueError),
            open(out / "locust_stats_history.csv", newline="") as fh,
        ):
            return float(next(csv.DictReader(fh))["Timestamp"])
        time.sleep(0.2)
    raise RuntimeError(f"locust wrote no stats history in {timeout_s:.0f} s")


def promote_back_and_forth(url: str, start_at: float, count: int, every_s: float) -> list[dict[str, Any]]:
    """`count` keyed promotions, `every_s` apart from `start_at` (time.time()): the adapted model first, then each
    time the `previous` one the last answer named (rollback)."""
    time.sleep(max(start_at - time.time(), 0))
    done, name = [], ADAPTED
    with httpx.Client(base_url=url, timeout=60, headers=AUTH) as http:
        for _ in range(count):
            started = time.perf_counter()
            answer = http.post(f"/models/{name}/promote")
            row = {"at": time.time(), "model": name, "status": answer.status_code}
            done.append({**row, "ms": round((time.perf_counter() - started) * 1000, 1)})
            if answer.status_code == 200:
                name = answer.json()["previous"]
            time.sleep(every_s)
    return done


def references(http: httpx.Client, models: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for model in models:
        body = http.post("/v1/embeddings", json={"input": CHECK_TEXTS, "model": model}).json()
        out[model] = np.array([row["embedding"] for row in body["data"]])
    first, second = out.values()
    if np.allclose(first, second, atol=1e-4):
        raise RuntimeError("the two models embed the check texts alike: the checker could not tell them apart")
    return out


class ReadyProbe(threading.Thread):
    """GET /readyz every READY_EVERY_S, as a kubelet would: each answer's time, and what was not a 200."""

    def __init__(self, url: str) -> None:
        super().__init__(name="readyz", daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.times: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.wait(READY_EVERY_S):
                started = time.perf_counter()
                try:
                    status = http.get("/readyz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.times.append(time.perf_counter() - started)
                if status != 200:
                    self.failures.append(f"HTTP {status}")


def watched(url: str, refs: dict[str, np.ndarray], until: Any) -> dict[str, Any]:
    """/readyz and /v1/embeddings probed until `until()` is true: their counts, failures and latencies."""
    ready, checker = ReadyProbe(url), Checker(url, refs)
    started = time.time()
    ready.start()
    checker.start()
    while not until():
        time.sleep(0.5)
    ready.stop.set()
    checker.stop.set()
    ready.join()
    checker.join()
    embeddings = checker.window(started, time.time())
    return {
        "seconds": round(time.time() - started, 1),
        "readyz": {
            "requests": len(ready.times) + len(ready.failures),
            "failures": len(ready.failures),
            **ms_stats(ready.times),
        },
        "embeddings": {**embeddings, "per_s": round(embeddings["requests"] / max(time.time() - started, 1e-9), 1)},
    }


def promotion_run(args: argparse.Namespace, url: str, refs: dict[str, np.ndarray], out: Path) -> dict[str, Any]:
    """Locust's three phases with the promotions in the middle one and the checker throughout."""
    spec = f"{args.users}:{args.before},{args.users}:{args.during},{args.users}:{args.after}"
    every = (args.during - 2 * args.margin) / args.promotions
    promotions: list[dict[str, Any]] = []

    def promote() -> None:
        start = locust_started(out) + args.before + args.margin
        promotions.extend(promote_back_and_forth(url, start, args.promotions, every))

    promoter, checker = threading.Thread(target=promote, daemon=True), Checker(url, refs)
    locust_args = argparse.Namespace(
        spawn_rate=args.users, weights="", think_scale=args.think_scale, batch=32, shared_data=None
    )
    names = {"intents": "intents", "reviews": "reviews"}
    (out / "locust_stats_history.csv").unlink(missing_ok=True)  # a previous run's
    checker.start()
    promoter.start()
    run_locust(locust_args, url, out, spec, names)
    checker.stop.set()
    promoter.join()
    checker.join()
    phases = json.loads((out / "phases.json").read_text())["phases"]
    labels = ("before", "during", "after")
    rows = []
    for label, phase in zip(labels, phases, strict=True):
        start, end = phase["started_at"], phase["started_at"] + phase["seconds"]
        inside = sum(start <= p["at"] < end for p in promotions)
        keys = ("requests", "failures", "shed_503", "p50_ms", "p99_ms")
        rows.append(
            {"phase": label, "promotions": inside, **{k: phase[k] for k in keys}, "checker": checker.window(start, end)}
        )
    return {"phases_spec": spec, "rows": rows, "promotions": promotions, "locust": read_stats(out / "locust")}


def training_run(args: argparse.Namespace, http: httpx.Client, refs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The probes for `--idle` seconds with no job, then for as long as a second adaptation job trains."""
    idle_until = time.monotonic() + args.idle
    idle = watched(str(http.base_url), refs, lambda: time.monotonic() >= idle_until)
    job = adapt(http, f"{ADAPTED}-2", args.train_epochs)
    state: dict[str, Any] = {}

    def done() -> bool:
        state.update(http.get(f"/jobs/{job}").json())
        return state["status"] in ("succeeded", "failed", "cancelled")

    training = watched(str(http.base_url), refs, done)
    history = state.get("progress", {}).get("history", [])
    job_row = {"job": job, "status": state.get("status"), "epochs_run": len(history), "error": state.get("error")}
    return {"idle": idle, "training": training, "job": job_row}


def server_env(data_dir: str, workers: int) -> dict[str, str]:
    """Keyed, as production is; several workers need the drift monitor off (o2v serve refuses them otherwise)."""
    env = {"O2V_DATA_DIR": data_dir, "O2V_API_KEY": KEY}
    return {**env, "O2V_DRIFT_ENABLED": "false"} if workers > 1 else env


def measure(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="o2v-bench-promotion-") as data_dir,
        ServerProcess(server_env(data_dir, args.workers), ("--workers", str(args.workers))) as server,
        httpx.Client(base_url=server.url, timeout=120) as http,
    ):
        load_collections(_Keyed(http), load(None), {"intents": "intents", "reviews": "reviews"})
        started = time.perf_counter()
        made = poll_job(http, adapt(http, ADAPTED, args.adapt_epochs), timeout_s=900)
        if made["status"] != "succeeded":
            raise RuntimeError(f"the adaptation job did not succeed: {made}")
        made_s = time.perf_counter() - started
        configured = http.get("/v1/models").json()["data"][0]["id"]
        refs = references(http, [configured, ADAPTED])
        promotion = promotion_run(args, server.url, refs, out)
        training = training_run(args, http, refs)
        models = [m["id"] for m in http.get("/v1/models").json()["data"]]
    return {
        "second_model": {"name": ADAPTED, "epochs": args.adapt_epochs, "job_s": round(made_s, 1)},
        "promotion": promotion,
        "serving_while_training": training,
        "models_after": models,
    }


class _Keyed:
    """load_collections' writes with the key (the bench's server is keyed, as production is)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, url: str) -> Any:
        return self.http.get(url, headers=AUTH)

    def put(self, url: str, *, json: Any) -> Any:
        return self.http.put(url, json=json, headers=AUTH)

    def post(self, url: str, *, json: Any) -> Any:
        return self.http.post(url, json=json, headers=AUTH)


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    rows = {r["phase"]: r for r in result["promotion"]["rows"]}
    during = rows["during"]
    training = result["serving_while_training"]["training"]
    promoted = [p for p in result["promotion"]["promotions"] if p["status"] == 200]
    return {
        "promotions_ok": len(promoted),
        "promotions_all_during": during["promotions"] == len(result["promotion"]["promotions"]),
        "lost_during_promotion": during["failures"] + during["checker"]["failures"],
        "both_models_answered": len(during["checker"]["by_model"]) == 2,
        "readyz_max_ms_while_training": training["readyz"]["max_ms"],
        "readyz_under_1s": training["readyz"]["failures"] == 0 and (training["readyz"]["max_ms"] or 1e9) < 1000,
        "embeddings_served_while_training": training["embeddings"]["requests"] - training["embeddings"]["failures"],
        "embedding_failures_while_training": training["embeddings"]["failures"],
    }


def report(result: dict[str, Any]) -> None:
    rows = []
    for row in result["promotion"]["rows"]:
        check = row["checker"]
        rows.append(
            {
                **row,
                "check_requests": check["requests"],
                "check_failures": check["failures"],
                "check_p50_ms": check["median_ms"],
                "check_p99_ms": check["p99_ms"],
                "models": ",".join(f"{m}:{n}" for m, n in sorted(check["by_model"].items())),
            }
        )
    columns = ["phase", "promotions", "requests", "failures", "shed_503", "p50_ms", "p99_ms", "check_requests"]
    columns += ["check_failures", "check_p50_ms", "check_p99_ms", "models"]
    print_table(rows, [(c, c) for c in columns])
    print()
    served = result["serving_while_training"]
    probes = []
    for window in ("idle", "training"):
        w = served[window]
        ready, embed = w["readyz"], w["embeddings"]
        probes.append(
            {
                "window": window,
                "seconds": w["seconds"],
                "readyz": ready["requests"],
                "readyz_failures": ready["failures"],
                "readyz_median_ms": ready["median_ms"],
                "readyz_max_ms": ready["max_ms"],
                "embeddings": embed["requests"],
                "embeddings_per_s": embed["per_s"],
                "embed_failures": embed["failures"],
                "embed_median_ms": embed["median_ms"],
                "embed_p99_ms": embed["p99_ms"],
            }
        )
    print_table(probes, [(c, c) for c in probes[0]])
    print(f"\ntraining job: {served['job']}; targets: {result['targets']}")
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.promotion", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=8, help="locust users (the load test's caller mix)")
    p.add_argument("--think-scale", type=float, default=1.0, help="times each caller's think time")
    p.add_argument("--before", type=float, default=20, help="seconds of load before the promotions")
    p.add_argument("--during", type=float, default=40, help="seconds of load with the promotions")
    p.add_argument("--after", type=float, default=10, help="seconds of load after them")
    p.add_argument("--margin", type=float, default=4, help="seconds kept free at the edges of the middle phase")
    p.add_argument("--promotions", type=int, default=8, help="promotions, back and forth (even: ends where it began)")
    p.add_argument("--adapt-epochs", type=int, default=2, help="epochs of the job that makes the second model")
    p.add_argument("--train-epochs", type=int, default=10, help="epochs of the job trained while serving")
    p.add_argument("--idle", type=float, default=15, help="seconds of the probes with no job, for comparison")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (each reads the promotion)")
    p.add_argument("--out", default="build/loadtest/promotion", help="folder for locust's reports")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), **measure(args, out)}
    result["targets"] = targets = verdict(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    report(result)
    met = targets["lost_during_promotion"] == 0 and targets["readyz_under_1s"]
    return 0 if met and targets["embedding_failures_while_training"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
