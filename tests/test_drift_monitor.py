"""Streams, baselines, persistence across a restart, the webhook and the background worker of the drift monitor."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.drift import DriftConfig, DriftMonitor, DriftWorker
from service.drift.errors import InvalidBaseline
from service.drift.judge import Judge, Verdict
from service.drift.notify import StatusNotifier
from service.drift.store import DriftStore
from service.errors import NotFound
from service.uris import MASK
from tests.drift_fixtures import FAST, card, config, feed, monitor, pay_first_checks, scores


def test_card_seeds_pair_streams_and_live_streams_learn_their_own() -> None:
    m = monitor()
    assert m.stream_report("similarity")["baseline"]["source"] == "model_card:test-model:validation"
    m.record("my-pairs", 0.5)
    assert m.stream_report("my-pairs")["n_baseline"] == 400  # any /similarity stream is pair cosines too
    with pytest.raises(NotFound):  # a 404 naming the stream, not a KeyError
        m.stream_report("never-recorded")
    assert m.stream_report("search_top1")["baseline"] is None
    learned = FAST.learn_warmup + FAST.learn_size
    feed(m, "search_top1", [*scores(FAST.learn_warmup, mean=0.1, seed=2), *scores(FAST.learn_size, mean=0.8, seed=3)])
    r = m.stream_report("search_top1")
    assert (r["n_baseline"], r["n_live"], r["status"]) == (FAST.learn_size, 0, "pending")
    assert r["baseline"]["source"] == f"live:first {FAST.learn_size} scores after {FAST.learn_warmup}"
    assert r["baseline"]["kind"] == "learned" and abs(r["baseline"]["mean"] - 0.8) < 0.05  # warm-up dropped
    assert learned <= FAST.window
    assert set(feed(m, "search_top1", scores(100, mean=0.8, seed=4))[-3:]) == {"ok"}


def test_set_baseline_replaces_and_resets_the_status() -> None:
    m = monitor()
    assert feed(m, "similarity", scores(100, mean=0.8))[-1] == "drift"
    described = m.set_baseline("similarity", scores(300, mean=0.8, seed=5), "upload")
    assert (described["n"], described["source"]) == (300, "upload")
    r = m.stream_report("similarity")
    assert (r["status"], r["n_live"], r["baseline"]["source"]) == ("pending", 100, "upload")
    assert set(feed(m, "similarity", scores(40, mean=0.8, seed=6))) == {"ok"}


@pytest.mark.parametrize("bad", [[1.0] * 5, [0.1] * 20 + [float("nan")]])
def test_set_baseline_rejects_too_few_or_non_finite_scores(bad: list[float]) -> None:
    with pytest.raises(InvalidBaseline):
        monitor().set_baseline("similarity", bad, "upload")


def test_record_drops_bad_scores_and_names_without_raising() -> None:
    m = monitor(config=config(max_streams=4))
    assert m.record("similarity", 0.5)
    assert not m.record("similarity", float("inf"))
    assert not m.record("similarity", "x")  # type: ignore[arg-type]
    assert not m.record("bad name!", 0.5)
    assert m.record("extra", 0.5)
    assert not m.record("one-too-many", 0.5)
    assert m.dropped == 4
    assert m.stream_report("similarity")["n_total"] == 1


def test_restart_keeps_windows_baselines_and_status(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    feed(m, "similarity", scores(150, mean=0.8))
    m.set_baseline("custom", scores(50, seed=8), "upload")
    feed(m, "custom", scores(120, seed=9))
    before = m.report()["streams"]
    assert before["similarity"]["status"] == "drift"
    m.close()

    again = monitor(tmp_path)
    after = again.report()["streams"]
    for name in ("similarity", "custom"):
        for key in ("status", "n_live", "n_total", "n_baseline", "live", "baseline", "statistics", "history"):
            assert after[name][key] == before[name][key], (name, key)
    again.record_many("similarity", scores(10, mean=0.8, seed=10))
    again.run_due_checks()
    assert again.stream_report("similarity")["status"] == "drift"  # no second alarm after a restart


def test_a_new_model_starts_windows_afresh_and_keeps_uploaded_baselines(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    feed(m, "similarity", scores(150, mean=0.8))
    m.set_baseline("custom", scores(50, seed=8), "upload")
    feed(m, "custom", scores(60, seed=9))
    feed(m, "search_top1", scores(FAST.window, seed=10))  # becomes its learned baseline
    m.close()
    again = monitor(tmp_path, model_card=card(name="retrained"))
    streams = again.report()["streams"]
    assert all(s["n_live"] == 0 and s["status"] == "pending" for s in streams.values())
    assert streams["custom"]["baseline"]["source"] == "upload"
    assert streams["search_top1"]["baseline"] is None
    assert streams["similarity"]["baseline"]["source"] == "model_card:retrained:validation"


def test_state_file_is_written_atomically(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    m.record_many("similarity", scores(5))
    assert m.save() and not m.save()  # nothing new, nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert DriftStore(tmp_path).load()["streams"]["similarity"]["window"]["total"] == 5


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    fail_first: list[bool]
    authorizations: list[str | None]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.authorizations.append(self.headers.get("Authorization"))
        if self.fail_first and self.fail_first.pop():
            self.send_response(503)
        else:
            self.received.append(body)
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def hook_server() -> Iterator[tuple[str, type[_Hook]]]:
    """A real HTTP server on 127.0.0.1 that answers 503 once, then records every POSTed JSON body; its URL and
    handler class (what it received, the Authorization headers it was sent)."""
    handler = type("Hook", (_Hook,), {"received": [], "fail_first": [True], "authorizations": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with hook_server() as (url, handler):
        yield url, handler.received


def test_webhook_receives_the_status_change_after_a_retry(webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    notifier = StatusNotifier(url, timeout_s=2.0, retries=2, backoff_s=0.01)
    m = monitor(notifier=notifier)
    assert feed(m, "similarity", scores(70, mean=0.8))[-1] == "drift"
    notifier.close()
    assert [(e["stream"], e["from"], e["to"]) for e in received] == [("similarity", "ok", "drift")]
    event = received[0]
    assert event["event"] == "drift_status_change" and event["statistics"]["ks_pvalue"] < 0.01
    assert "dropout" in event["advice"] and "L1" not in event["advice"]
    assert notifier.delivered == 1


def test_unreachable_webhook_never_blocks_recording() -> None:
    notifier = StatusNotifier("http://127.0.0.1:9/none", timeout_s=0.2, retries=1, backoff_s=0.01)
    m = monitor(notifier=notifier)
    pay_first_checks()  # by a monitor without a hook: the time below is the hook's
    started = time.perf_counter()
    feed(m, "similarity", scores(70, mean=0.8))
    assert time.perf_counter() - started < 1.0
    notifier.close()
    assert notifier.failed == 1


def test_a_webhooks_secrets_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """The password, the query token and the secret path of a webhook URL appear in no log line, whatever fails
    (a retried 503, an unreachable host, a URL urllib refuses and quotes); `user:password@` is sent as Basic
    authorization, so such a webhook is reached."""
    event = {"event": "drift_status_change", "stream": "similarity", "to": "drift"}
    caplog.set_level(logging.INFO, logger="service.drift")
    with hook_server() as (url, hook):
        secret = url.replace("http://", "http://ops:pa%40ss-7Qx@") + "?token=t0ken-9Wz"
        notifier = StatusNotifier(secret, timeout_s=2.0, retries=2, backoff_s=0.01)
        notifier.notify(event)
        notifier.close()
    assert notifier.delivered == 1 and hook.received == [event]
    assert hook.authorizations[-1] == "Basic " + base64.b64encode(b"ops:pa@ss-7Qx").decode()
    for failing in ("http://127.0.0.1:9/T0/B0/s3cretpath?sig=s1g-4Kd", "http://127.0.0.1:9/T0/s3cretpath?key=a b"):
        notifier = StatusNotifier(failing, timeout_s=0.5, retries=1, backoff_s=0.01)
        notifier.notify(event)
        notifier.close()
        assert notifier.failed == 1, failing  # the quoting error too: the webhook thread lives on
    failures = [json.loads(r.getMessage()) for r in caplog.records if "drift_webhook_failed" in r.getMessage()]
    assert [f["webhook"] for f in failures] == ["http://127.0.0.1:9"] * 2
    assert "control characters" in failures[1]["error"] and f"/{MASK}" in failures[1]["error"]
    for leaked in ("pa%40ss", "pa@ss", "t0ken-9Wz", "s3cretpath", "s1g-4Kd", "ops:"):
        assert leaked not in caplog.text, leaked


def test_worker_checks_in_the_background_and_saves_on_stop(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    worker = DriftWorker(m)
    worker.start()
    m.record_many("similarity", scores(80, mean=0.8))
    deadline = time.monotonic() + 5
    while m.stream_report("similarity")["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert m.stream_report("similarity")["status"] != "pending"
    worker.stop()
    assert DriftStore(tmp_path).load()["streams"]["similarity"]["window"]["total"] == 80


class HeldJudge(Judge):
    """The real judge, whose first verdict waits for `release`; `entered` says a check reached it."""

    def __init__(self, config: DriftConfig) -> None:
        super().__init__(config)
        self.entered, self.release = threading.Event(), threading.Event()

    def verdict(self, *args: Any, **kwargs: Any) -> Verdict:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        return super().verdict(*args, **kwargs)


def test_a_scrape_during_a_check_shows_the_checks_outcome() -> None:
    """The Prometheus collector reads under the monitor's check lock: a scrape that arrives while a check runs (here
    a first check that learns its baseline, held mid-verdict) waits and shows the new status, not the `pending`
    from before the check."""
    from service.drift.metrics import DriftCollector

    cfg = config(window=400, min_samples=50, baseline="learn", learn_warmup=0, learn_size=300)
    judge = HeldJudge(cfg)
    m = DriftMonitor(cfg, card(), judge=judge)
    m.record_many("custom", scores(350, seed=21))
    checker = threading.Thread(target=m.check, args=("custom",))
    checker.start()
    assert judge.entered.wait(10)  # the check holds the check lock, mid-verdict
    seen: list[Any] = []
    scraper = threading.Thread(target=lambda: seen.extend(DriftCollector(m).collect()))
    scraper.start()
    scraper.join(0.5)
    assert scraper.is_alive()  # the scrape waits for the check
    judge.release.set()
    checker.join()
    scraper.join(10)
    status = next(f for f in seen if f.name == "o2v_drift_status")
    assert {s.labels["stream"]: s.value for s in status.samples}["custom"] == 0.0


def test_a_second_check_of_the_same_scores_does_not_confirm_a_drift() -> None:
    m = monitor()
    m.record_many("similarity", scores(60, mean=0.2, seed=5))
    assert m.check("similarity") == "ok"  # the first verdict after pending, not yet confirmed
    assert m.check("similarity") == "ok"  # no new score since: the worker and a caller both found it due
    m.record_many("similarity", scores(FAST.check_every, mean=0.2, seed=6))
    assert m.check("similarity") == "drift"


def test_a_baseline_upload_a_read_only_disk_refused_keeps_the_old_reference(small_disk: Path) -> None:
    """The new embedding reference is computed, stored, and only then used: a save that fails (the data
    directory's file system turned read-only) leaves the old baseline and the old reference in use."""
    rng = np.random.default_rng(0)
    settings, sample = config(embed_window=40, embed_min_samples=10), unit(rng.normal(size=(60, 16)))
    m = DriftMonitor(settings, card(), DriftStore(small_disk / "drift"), embedding_sample=sample)
    assert m.embeddings is not None
    m.set_baseline("similarity", scores(50), "first", texts=unit(rng.normal(size=(24, 16))))
    reference, baseline = m.embeddings.families["similarity"].own, m.baseline("similarity")
    second = unit(rng.normal(size=(30, 16)) + 1.0)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        with pytest.raises(OSError):
            m.set_baseline("similarity", scores(50, mean=0.3), "second", texts=second)
        assert m.embeddings.families["similarity"].own is reference and m.baseline("similarity") is baseline
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    m.set_baseline("similarity", scores(50, mean=0.3), "second", texts=second)
    assert own_size(m) == 30 and m.baseline("similarity").source == "second"
    assert own_size(DriftMonitor(settings, card(), DriftStore(small_disk / "drift"), embedding_sample=sample)) == 30


def own_size(m: DriftMonitor) -> int:
    """Rows of the similarity family's own reference."""
    assert m.embeddings is not None
    own = m.embeddings.families["similarity"].own
    assert own is not None
    return int(own.vectors.shape[0])


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
