"""The load test runner end to end: a real `o2v serve`, real locust, a few seconds of light load. The long runs are
benchmarks (docs/benchmarks.md, "Load tests"); this checks the runner's outputs and its SLO verdict."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from loadtests.run import LOAD_ROUTES, main
from tests.server_process import ServerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
LIGHT = ["--spawn-rate", "4", "--think-scale", "0.2", "--batch", "8", "--probes", "2"]
EVERY_CALLER = ["--weights", "intent=1,search=1,bulk=1,pairs=1"]


@pytest.fixture(autouse=True)
def _one_onnx_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_ONNX_INTRA_OP_THREADS", "1")  # leave the other core to locust


def test_a_light_run_reports_every_route_without_failures_and_an_impossible_slo_fails(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["--users", "4", "--duration", "4", *EVERY_CALLER, *LIGHT, "--max-p99-ms", "0.001", "--out", str(out)])
    printed = capsys.readouterr().out.strip().splitlines()

    assert code == 1
    summary = json.loads(printed[-1])
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["slo"]["broken"] == [f"p99 {summary['total']['p99_ms']} ms > 0.001 ms"]  # only the impossible one
    assert set(summary["routes"]) == set(LOAD_ROUTES)
    for route in summary["routes"].values():
        assert route["requests"] > 0 and route["failures"] == 0 and route["p50_ms"] <= route["p99_ms"]
    assert summary["total"]["requests"] == sum(r["requests"] for r in summary["routes"].values())
    assert summary["after"] == {**summary["after"], "requests": 8, "ok": 8, "recovered": True}
    assert summary["server"]["200"]["count"] >= summary["total"]["requests"] and "503" not in summary["server"]
    assert summary["rss_mib"]["before"] <= summary["rss_mib"]["peak"] < 2048
    (phase,) = summary["phases"]
    # a request still in flight when locust stops may reach one record (phases at quit) and not the other (CSV)
    assert phase["users"] == 4 and phase["shed_503"] == 0
    assert 0 <= phase["requests"] - summary["total"]["requests"] <= phase["users"]
    with open(out / "locust_stats.csv", newline="") as fh:
        assert {row["Name"] for row in csv.DictReader(fh)} == {*LOAD_ROUTES, "Aggregated"}
    assert "/collections/{name}/classify" in (out / "locust.html").read_text()


def test_the_runner_as_a_command_exits_0_when_the_slo_holds(tmp_path: Path) -> None:
    """`python -m loadtests.run` from the repository root, as docs/operations.md runs it."""
    command = [sys.executable, "-m", "loadtests.run", "--users", "2", "--duration", "2", *LIGHT]
    done = subprocess.run([*command, "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["slo"]["ok"] and summary["total"]["requests"] > 0 and summary["pools"] == "fixtures"


LOCUSTFILE = str(REPO / "loadtests" / "locustfile.py")
LOCUST = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "-u", "2", "-r", "2", "-t", "30s"]
ANSWERED = ["--o2v-stop-after", "10"]  # the runs end once 10 requests were answered; -t is the limit at any load
STOPPED = "requests answered (--o2v-stop-after 10): shutting down"  # on a master: at least 10, the workers report
KEY = "o2v-locust-test-key-7Hq2"


def locust_failures(csv_prefix: Path) -> dict[str, tuple[int, int]]:
    with open(f"{csv_prefix}_stats.csv", newline="") as fh:
        return {row["Name"]: (int(row["Request Count"]), int(row["Failure Count"])) for row in csv.DictReader(fh)}


def test_plain_locust_against_a_fresh_keyed_server_creates_its_collections(tmp_path: Path) -> None:
    """`locust -f loadtests/locustfile.py --host URL` from the repository root, as locust runs: test_start creates
    what the callers need."""
    env = {"O2V_DATA_DIR": str(tmp_path / "data"), "O2V_API_KEY": KEY}
    weights = ["--o2v-weights", "intent=1,search=1,bulk=0,pairs=0", "--o2v-think-scale", "0.2", *ANSWERED]
    with ServerProcess(env) as server:
        command = [*LOCUST, "--host", server.url, "--csv", str(tmp_path / "run"), *weights]
        done = subprocess.run(command, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=60)
        listed = httpx.get(f"{server.url}/collections", headers={"Authorization": f"Bearer {KEY}"}).json()
    counts = {c["name"]: c["count"] for c in listed["collections"]}
    assert done.returncode == 0, done.stderr[-3000:]
    assert STOPPED in done.stderr  # not by -t
    stats = locust_failures(tmp_path / "run")
    assert stats["Aggregated"][0] > 0 and stats["Aggregated"][1] == 0, stats
    assert counts["intents"] > 0 and counts["reviews"] > 0


def test_distributed_locust_master_and_worker_both_set_up_safely(tmp_path: Path) -> None:
    """test_start fires on the master and on each worker: both run the idempotent setup; no request fails."""
    port = str(free_port())
    weights = ["--o2v-weights", "intent=1,search=1,bulk=0,pairs=0", "--o2v-think-scale", "0.2", *ANSWERED]
    with ServerProcess({"O2V_DATA_DIR": str(tmp_path / "data")}) as server:
        master = [*LOCUST, "--host", server.url, "--master", "--master-bind-port", port, "--expect-workers", "1"]
        worker = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-port", port, *weights]
        with subprocess.Popen(
            worker, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO
        ) as running:
            done = subprocess.run(
                [*master, "--csv", str(tmp_path / "run"), *weights],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=90,
            )
            try:
                running.wait(timeout=20)  # the worker quits with its master
            except subprocess.TimeoutExpired:
                running.kill()
    assert done.returncode == 0, done.stderr[-3000:]
    assert STOPPED in done.stderr  # not by -t
    stats = locust_failures(tmp_path / "run")
    assert stats["Aggregated"][0] > 0 and stats["Aggregated"][1] == 0, stats
