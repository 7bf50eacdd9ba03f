"""Locust users that call the service the way its real callers do, and a load shape in phases.

    python -m loadtests.run --users 8 --duration 30          # the usual way: server, collections, report, SLO
    locust -f loadtests/locustfile.py --headless -u 8 -r 4 -t 30s --host http://127.0.0.1:8000
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000              # web UI on :8089
    locust -f loadtests/locustfile.py --master --host URL & locust -f loadtests/locustfile.py --worker

At test start (locust's test_start event: on the master and on each worker) the collections the callers need are
created and filled when they are missing (load_collections of loadtests/plan.py, idempotent), so any of
these works against a fresh server; with a keyed server give the key as O2V_API_KEY (or --o2v-api-key).

Callers: a chatbot classifying short utterances (`intent`), a user searching similar reviews (`search`), a batch
job embedding texts (`bulk`), a service scoring text pairs (`pairs`). Each waits a think time between requests,
drawn from its own range times `--o2v-think-scale` (0: back to back, which is how saturation is measured).
A 503 is counted as a failure of its own kind (SHED), so the reports tell load the bounded queue refused apart
from errors. Options, each also an environment variable (O2V_LOADTEST_<NAME>):

    --o2v-weights intent=4,search=3,bulk=1,pairs=2   user mix; weight 0 leaves a caller out
    --o2v-think-scale 1.0     --o2v-batch 32 (texts per bulk request)
    --o2v-intents intents     --o2v-reviews reviews (collection names)
    --o2v-shared-data DIR     text pools from the public datasets instead of loadtests/pools.py's fixtures
    --o2v-phases 48:20,4:20   users:seconds per phase, reached at -r users/s (default: -u users for -t)
    --o2v-phase-report FILE   per-phase JSON: requests, failures, 503s, percentiles (all, 200s, 503s), last failure
    --o2v-stop-after N        quit once N requests were answered (0: run for -t, which stays the limit)
    --o2v-api-key KEY         Bearer key for every request (env O2V_API_KEY, the server's own setting)
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.plan import DEFAULT_WEIGHTS, SHED, load_collections, phases
from loadtests.pools import Pools, load

POOLS: Pools | None = None


def pools() -> Pools:
    if POOLS is None:
        raise RuntimeError("the text pools load at locust's init event")
    return POOLS


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    def option(name: str, default: Any, help: str, kind: type = str) -> None:
        env = "O2V_LOADTEST_" + name.upper().replace("-", "_")
        parser.add_argument(f"--o2v-{name}", type=kind, default=default, env_var=env, help=help)

    option("weights", "", "user mix, e.g. intent=4,search=3,bulk=1,pairs=2 (weight 0 leaves a caller out)")
    option("think-scale", 1.0, "multiplies every caller's think time; 0 = back to back", float)
    option("batch", 32, "texts per bulk /v1/embeddings request", int)
    option("intents", "intents", "the intents collection (items with a `label`)")
    option("reviews", "reviews", "the reviews collection (items with a `source`)")
    option("shared-data", "", "public datasets folder for the text pools (default: project fixtures)")
    option("phases", "", "users:seconds,... (default: -u users for -t)")
    option("phase-report", "", "write per-phase statistics to this JSON file")
    option("stop-after", 0, "quit once this many requests were answered (0: run for -t, which stays the limit)", int)
    parser.add_argument(
        "--o2v-api-key", default="", env_var="O2V_API_KEY", help="Bearer key for every request (keyed servers)"
    )


def auth_headers(options: Any) -> dict[str, str]:
    key = getattr(options, "o2v_api_key", "") if options else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


def weights(spec: str) -> dict[str, int]:
    """`intent=4,bulk=0` → {"intent": 4, "bulk": 0}; unknown caller names are an error."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        if key not in CALLERS:
            raise ValueError(f"--o2v-weights: no caller {key!r}; callers: {', '.join(CALLERS)}")
        out[key] = int(value)
    return out


class Caller(FastHttpUser):
    """One kind of caller: `key` names it in --o2v-weights, `think` is its (min, max) seconds between requests."""

    abstract = True
    key: ClassVar[str]
    think: ClassVar[tuple[float, float]]

    def wait_time(self) -> float:
        scale = self.environment.parsed_options.o2v_think_scale if self.environment.parsed_options else 1.0
        return random.uniform(*self.think) * scale

    def post(self, path: str, body: dict[str, Any], name: str, valid: Callable[[Any], bool]) -> None:
        """POST and judge the answer: 503 is SHED, any other non-200 or an answer `valid` refuses is a failure."""
        headers = auth_headers(self.environment.parsed_options)
        with self.client.post(path, json=body, name=name, headers=headers, catch_response=True) as response:
            if response.status_code == 503:
                response.failure(SHED)
            elif response.status_code != 200:
                response.failure(f"HTTP {response.status_code} {response.error or ''}".strip())
            elif not valid(response.json()):
                response.failure("the answer does not have the documented shape")

    def option(self, name: str) -> Any:
        return getattr(self.environment.parsed_options, f"o2v_{name}")


class IntentClassifier(Caller):
    """A chatbot: one short utterance per user turn, kNN intent over the intents collection."""

    key, think = "intent", (1.0, 3.0)
    weight = DEFAULT_WEIGHTS[key]

    @task
    def classify(self) -> None:
        body = {"text": random.choice(pools().intent_queries), "k": 10}
        path = f"/collections/{self.option('intents')}/classify"
        self.post(path, body, "/collections/{name}/classify", lambda a: "label" in a and "confidence" in a)


class ReviewSearcher(Caller):
    """Someone browsing reviews: similar reviews to a phrase, a third of the time within one source."""

    key, think = "search", (2.0, 5.0)
    weight = DEFAULT_WEIGHTS[key]

    @task
    def search(self) -> None:
        body: dict[str, Any] = {"query": random.choice(pools().review_queries), "top_k": 5}
        if random.random() < 1 / 3:
            body["filter"] = {"source": random.choice(pools().review_items)["metadata"]["source"]}
        path = f"/collections/{self.option('reviews')}/search"
        self.post(path, body, "/collections/{name}/search", lambda a: isinstance(a.get("hits"), list))


class BulkEmbedder(Caller):
    """A batch job: `--o2v-batch` texts per OpenAI-style embeddings request, little pause between them. It asks for
    base64 vectors, as OpenAI's own client does by default (a quarter of the bytes, no float parsing)."""

    key, think = "bulk", (0.2, 0.5)
    weight = DEFAULT_WEIGHTS[key]

    @task
    def embed(self) -> None:
        size = self.option("batch")
        body = {"input": random.choices(pools().sentences, k=size), "encoding_format": "base64"}
        self.post("/v1/embeddings", body, "/v1/embeddings", lambda a: len(a.get("data", [])) == size)


class PairScorer(Caller):
    """A duplicate detector: scores 1 to 4 text pairs per request (the scores feed the drift monitor)."""

    key, think = "pairs", (1.0, 2.0)
    weight = DEFAULT_WEIGHTS[key]

    @task
    def score(self) -> None:
        pairs = random.sample(pools().pairs, random.randint(1, 4))
        self.post("/similarity", {"pairs": pairs}, "/similarity", lambda a: len(a.get("results", [])) == len(pairs))


CALLERS: dict[str, type[Caller]] = {c.key: c for c in (IntentClassifier, ReviewSearcher, BulkEmbedder, PairScorer)}


class Phases(LoadTestShape):
    """The load in phases (--o2v-phases), each phase's users reached at -r users/s; or -u users for -t."""

    use_common_options = True

    @property
    def _options(self) -> Any:
        """locust's parsed options (locust gives the shape its runner before it asks for a tick)."""
        assert self.runner is not None and self.runner.environment.parsed_options is not None
        return self.runner.environment.parsed_options

    def plan(self) -> list[tuple[int, float]]:
        options = self._options
        return phases(options.o2v_phases, options.num_users or 1, options.run_time)

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        end = 0.0
        for users, seconds in self.plan():
            end += seconds
            if elapsed < end:
                return users, self._options.spawn_rate or users
        return None


def _percentile(ms: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(ms, q)), 1) if len(ms) else None


class PhaseRecorder:
    """Every request's time, outcome and phase, for the per-phase record (one list entry per request)."""

    def __init__(self, environment: Environment) -> None:
        shape = environment.shape_class
        assert isinstance(shape, Phases), "locust uses this file's one load shape"
        self.shape = shape
        self.plan = self.shape.plan()
        self.ends = np.cumsum([s for _, s in self.plan])
        self.rows: list[tuple[int, float, float, str]] = []  # phase, seconds into the run, ms, outcome

    def on_request(self, response_time: float, exception: BaseException | None, **_: Any) -> None:
        elapsed = self.shape.get_run_time()
        phase = min(int(np.searchsorted(self.ends, elapsed, side="right")), len(self.plan) - 1)
        outcome = "ok" if exception is None else ("shed" if SHED in str(exception) else "failed")
        self.rows.append((phase, elapsed, response_time, outcome))

    def report(self) -> dict[str, Any]:
        now = self.shape.get_run_time()
        started_at = time.time() - now
        out = []
        for i, (users, seconds) in enumerate(self.plan):
            start = float(self.ends[i] - seconds)
            rows = [r for r in self.rows if r[0] == i]
            times = np.array([r[2] for r in rows])
            ok = np.array([r[2] for r in rows if r[3] == "ok"])
            shed = np.array([r[2] for r in rows if r[3] == "shed"])
            failed_at = [r[1] - start for r in rows if r[3] != "ok"]
            wall = max(min(seconds, now - start), 1e-9)
            out.append(
                {
                    "phase": i,
                    "users": users,
                    "seconds": seconds,
                    "started_at": started_at + start,
                    "requests": len(rows),
                    "rps": round(len(rows) / wall, 1),
                    "failures": len(failed_at),
                    "shed_503": len(shed),
                    "shed_ratio": round(len(shed) / len(rows), 4) if rows else 0.0,
                    **{f"p{q}_ms": _percentile(times, q) for q in (50, 95, 99)},
                    "ok_p99_ms": _percentile(ok, 99),
                    "shed_p99_ms": _percentile(shed, 99),
                    "last_failure_s": round(max(failed_at), 1) if failed_at else None,
                }
            )
        return {"phases": out}


@events.test_start.add_listener
def _collections(environment: Environment, **_: Any) -> None:
    """Create and fill the collections the callers search and classify in, where missing. Locust fires this on the
    master and on every worker (and on a local runner once): load_collections is idempotent and a full collection
    costs one GET, so the nodes may all run it, at once too; the master's runs before any worker spawns users."""
    options = environment.parsed_options
    if options is None or not environment.host or POOLS is None:
        return
    import httpx  # after locust's gevent patching, so its sockets cooperate

    names = {"intents": options.o2v_intents, "reviews": options.o2v_reviews}
    try:
        with httpx.Client(base_url=environment.host, headers=auth_headers(options), timeout=120) as http:
            load_collections(http, POOLS, names)
    except httpx.HTTPError as exc:
        logging.getLogger(__name__).error("could not create the collections %s at %s: %s", names, environment.host, exc)
        raise


@events.test_start.add_listener
def _stop_after(environment: Environment, **_: Any) -> None:
    """--o2v-stop-after N: quit as -t would once N requests were answered, so that a run that only has to show
    that requests succeed ends when they did. Counted where the statistics meet: on the master, from the workers'
    reports (every 3 s)."""
    options, runner = environment.parsed_options, environment.runner
    if options is None or not options.o2v_stop_after or runner is None or isinstance(runner, WorkerRunner):
        return

    def watch() -> None:
        while runner.stats.total.num_requests < options.o2v_stop_after:
            time.sleep(0.1)
        answered, limit = runner.stats.total.num_requests, options.o2v_stop_after
        logging.getLogger(__name__).info("%d requests answered (--o2v-stop-after %d): shutting down", answered, limit)
        runner.quit()

    threading.Thread(target=watch, daemon=True).start()  # a greenlet: locust patches threading and time (gevent)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    """Load the text pools and apply the weights; a caller weighted 0 is left out."""
    global POOLS
    options = environment.parsed_options
    if options is None:
        return
    POOLS = load(options.o2v_shared_data or None)
    for key, weight in weights(options.o2v_weights).items():
        CALLERS[key].weight = weight
    environment.user_classes[:] = [c for c in environment.user_classes if c.weight > 0]
    if not environment.user_classes:
        raise ValueError("--o2v-weights leaves no caller with a weight above 0")
    if options.o2v_phase_report:
        recorder = PhaseRecorder(environment)
        environment.events.request.add_listener(recorder.on_request)

        @environment.events.quitting.add_listener
        def _write(**_: Any) -> None:
            Path(options.o2v_phase_report).write_text(json.dumps(recorder.report(), indent=1))
