"""Limits at the connection: a real `o2v serve` under `ulimit -n 256` with a low connection cap takes huge
and numerous headers (431 before buffering them), heads and bodies that trickle in (408), and more slow connections
than it has descriptors for, while /healthz keeps answering in well under a second."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server_process import ServerProcess, free_port, limited_serve

NOFILE = 256
MAX_CONNECTIONS = 40
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    port = free_port()
    env = {
        "O2V_DATA_DIR": str(tmp_path_factory.mktemp("http")),
        "O2V_MAX_OPEN_COLLECTIONS": "8",
        "O2V_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "O2V_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "O2V_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    }
    with ServerProcess(env, command=limited_serve(port, NOFILE), port=port) as proc:
        yield proc


def rss_mb(server: ServerProcess) -> float:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def healthz_seconds(server: ServerProcess) -> float:
    """Seconds /healthz took on a fresh connection; it must answer 200."""
    started = time.monotonic()
    answer = httpx.get(f"{server.url}/healthz", timeout=10)
    assert answer.status_code == 200
    return time.monotonic() - started


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def answer_of(sock: socket.socket) -> bytes:
    """What the server sent before closing (b"" when it closed without a word)."""
    sock.settimeout(10)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_huge_header_is_refused_before_it_is_buffered(server: ServerProcess) -> None:
    """The probe's 256 MB header: the server closes the connection with 431 once the head passes
    O2V_MAX_HEADER_BYTES, long before the sender is done; RSS stays put and /healthz stays fast meanwhile."""
    before = rss_mb(server)
    sent, refused = 0, threading.Event()

    def attack() -> None:
        nonlocal sent
        with connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            try:
                while sent < 256 << 20:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                refused.set()

    thread = threading.Thread(target=attack)
    thread.start()
    slowest = max(healthz_seconds(server) for _ in range(10))
    thread.join(timeout=60)
    assert refused.is_set() and sent < 32 << 20, f"the server took {sent >> 20} MB of one header"
    assert slowest < 1.0
    assert rss_mb(server) - before < 64


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /healthz?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 900) for i in range(90)),
    ],
    ids=["one-long-header", "long-url", "150-headers", "90-headers-of-900-bytes-unfinished"],
)
def test_an_oversized_head_gets_431_naming_the_limit(server: ServerProcess, head: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(head)
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"65536 bytes" in answer or b"100 headers" in answer
    assert healthz_seconds(server) < 1.0


def trickle(server: ServerProcess, head: bytes, byte: bytes) -> tuple[bytes, float]:
    """Send `head`, then `byte` every 0.25 s for 10 s or until the server closes; what it answered, and when."""
    with connect(server) as sock:
        sock.sendall(head)
        started = time.monotonic()
        try:
            for _ in range(40):  # never idle long, never done
                time.sleep(0.25)
                sock.sendall(byte)
        except OSError:
            pass
        return answer_of(sock), time.monotonic() - started


def test_a_head_that_trickles_in_is_closed_with_408(server: ServerProcess) -> None:
    answer, seconds = trickle(server, b"GET /healthz HTTP/1.1\r\n", b"X")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert seconds < HEADER_TIMEOUT_S + 2


def test_a_body_that_trickles_in_is_closed_with_408(server: ServerProcess) -> None:
    answer, seconds = trickle(server, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n", b" ")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert seconds < BODY_TIMEOUT_S + 2


def test_more_slow_clients_than_descriptors_leave_healthz_answering(server: ServerProcess) -> None:
    """300 connections holding an unfinished head, under ulimit -n 256: the oldest give way to new ones at
    O2V_MAX_CONNECTIONS, so descriptors never run out and every /healthz answers at once."""
    held: list[socket.socket] = []
    try:
        for _ in range(300):
            sock = connect(server)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        times = [healthz_seconds(server) for _ in range(10)]
        assert max(times) < 1.0, times
        keep_alive = httpx.Client(base_url=server.url, timeout=10)
        with keep_alive:  # a kept-alive client reuses its connection between calls, as a probe loop does
            assert all(keep_alive.get("/healthz").status_code == 200 for _ in range(5))
    finally:
        for sock in held:
            sock.close()
    assert healthz_seconds(server) < 1.0


def test_a_body_still_trickling_after_an_early_answer_gets_no_second_answer(server: ServerProcess) -> None:
    """A body over O2V_MAX_BODY_BYTES is answered 413 at once; its sender, still trickling, is closed at the body
    timeout without a second answer on the connection."""
    head = b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n\r\n"
    answer, seconds = trickle(server, head, b" ")
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.count(b"HTTP/1.1 ") == 1, answer[:300]
    assert seconds < BODY_TIMEOUT_S + 2
