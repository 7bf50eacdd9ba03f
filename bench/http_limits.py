"""Connection and amplification limits: the second probe's attacks on headers, slow clients and /tokenize, replayed
against a real `o2v serve` under `ulimit -n 1024` with the default settings.

    python -m bench.http_limits                  # about a minute
    python -m bench.http_limits --slow-seconds 10 --slow-clients 300

Measured while each attack runs: the median and slowest of /healthz calls made every 0.2 s (and how many failed),
the server's resident memory before, at its peak and after, and what the attacker got; the first row is the same
watch with no attack, the machine's own noise. Targets: no /healthz failure, /healthz
under 1 s, a huge header refused before 32 MB are read, RSS growth under 100 MB. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.tables import print_table
from tests.server_process import ServerProcess, free_port, limited_serve

NOFILE = 1024


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def watched(server: ServerProcess, attack: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `attack` while probing /healthz every 0.2 s and sampling RSS every 0.05 s."""
    assert server.process is not None
    pid, done = server.process.pid, threading.Event()
    before = rss_mb(pid)
    peak, probes, failures = before, [], 0

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)

    def probe() -> None:
        nonlocal failures
        while not done.is_set():
            started = time.monotonic()
            try:
                ok = httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            probes.append(time.monotonic() - started)
            failures += not ok
            time.sleep(0.2)

    threads = [threading.Thread(target=sample), threading.Thread(target=probe)]
    for t in threads:
        t.start()
    try:
        result = attack()
    finally:
        done.set()
        for t in threads:
            t.join()
    time.sleep(1.0)
    return {
        **result,
        "healthz_median_s": round(statistics.median(probes), 3) if probes else None,
        "healthz_max_s": round(max(probes, default=0.0), 3),
        "healthz_failed": failures,
        "healthz_calls": len(probes),
        "rss_before_mb": round(before),
        "rss_peak_mb": round(peak),
        "rss_after_mb": round(rss_mb(pid)),
    }


def idle(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {}


def huge_header(server: ServerProcess, megabytes: int, senders: int) -> dict[str, Any]:
    sent = [0] * senders
    started = time.monotonic()
    answers: list[bytes] = [b""] * senders

    def send(i: int) -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            try:
                while sent[i] < megabytes << 20:
                    sock.sendall(chunk)
                    sent[i] += len(chunk)
                answers[i] = sock.recv(200)
            except OSError:
                try:
                    answers[i] = sock.recv(200)
                except OSError:
                    answers[i] = b"(reset)"

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted({a[:12].decode(errors="replace") or "(closed)" for a in answers})
    return {"sent_mb_max": max(sent) >> 20, "seconds": round(time.monotonic() - started, 2), "answer": statuses}


def slow_clients(server: ServerProcess, clients: int, seconds: float, every_s: float) -> dict[str, Any]:
    """`clients` connections, each sending a head one byte every `every_s`; a closed one reconnects at once."""
    socks: list[socket.socket | None] = [None] * clients
    reconnects = refused = 0

    def connect() -> socket.socket | None:
        nonlocal refused
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            return sock
        except OSError:
            refused += 1
            return None

    end = time.monotonic() + seconds
    for i in range(clients):
        socks[i] = connect()
    while time.monotonic() < end:
        time.sleep(every_s)
        for i, sock in enumerate(socks):
            try:
                if sock is None:
                    raise OSError
                sock.sendall(b"a")
            except OSError:
                if sock is not None:
                    sock.close()
                reconnects += 1
                socks[i] = connect()
    for sock in socks:
        if sock is not None:
            sock.close()
    return {"clients": clients, "seconds": seconds, "reconnects": reconnects, "connect_failed": refused}


def tokenize(server: ServerProcess, parallel: int) -> dict[str, Any]:
    body = {"inputs": ["!" * 8192] * 240}
    out: list[tuple[int, int]] = []

    def call() -> None:
        answer = httpx.post(f"{server.url}/tokenize", json=body, timeout=120)
        out.append((answer.status_code, len(answer.content)))

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "seconds": round(time.monotonic() - started, 2),
        "answer": sorted({str(s) for s, _ in out}),
        "answer_bytes_max": max(n for _, n in out),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slow-clients", type=int, default=1100)
    p.add_argument("--slow-seconds", type=float, default=20.0)
    p.add_argument("--slow-every", type=float, default=5.0, help="seconds between two bytes of one slow client")
    p.add_argument("--only", help="run only the attacks whose name contains this")
    args = p.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # the attacker's own descriptors
    port = free_port()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as data_dir:
        env = {"O2V_DATA_DIR": data_dir}
        with ServerProcess(env, command=limited_serve(port, NOFILE), port=port) as server:
            attacks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("none (the machine's own noise)", lambda: idle(args.slow_seconds)),
                ("one 256 MB header", lambda: huge_header(server, 256, 1)),
                ("four 100 MB headers", lambda: huge_header(server, 100, 4)),
                (
                    f"{args.slow_clients} slow clients",
                    lambda: slow_clients(server, args.slow_clients, args.slow_seconds, args.slow_every),
                ),
                ("/tokenize 240 × 8192 '!'", lambda: tokenize(server, 1)),
                ("four such /tokenize", lambda: tokenize(server, 4)),
            ]
            for name, attack in attacks:
                if args.only and args.only not in name and not name.startswith("none"):
                    continue
                rows.append({"attack": name, **watched(server, attack)})
    columns = [
        ("attack", "attack"),
        ("answer", "answer"),
        ("sent_mb_max", "MB sent"),
        ("answer_bytes_max", "answer bytes"),
        ("healthz_median_s", "/healthz median s"),
        ("healthz_max_s", "slowest"),
        ("healthz_failed", "/healthz failed"),
        ("rss_before_mb", "RSS before MB"),
        ("rss_peak_mb", "peak"),
        ("rss_after_mb", "after"),
    ]
    print_table(rows, columns)
    print(json.dumps({"bench": "http_limits", "nofile": NOFILE, "rows": rows}))


if __name__ == "__main__":
    main()
