"""`ServerProcess`: a child `o2v serve` on a free loopback port until /readyz answers, for the end-to-end tests, the
HTTP benchmarks (bench/http_*.py) and the load-test runner (loadtests/runner.py). A test fixture: it stays out of
the wheel (tests/test_packaging.py checks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

POLL_S = 0.02
"""Between two /readyz attempts while the port refuses: a refused connect costs microseconds, and each start the
tests make waits half this on average past the moment the server is ready."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def limited_serve(port: int, nofile: int) -> list[str]:
    """A command running `o2v serve` on 127.0.0.1:`port` under `ulimit -n nofile` (ServerProcess' `command`), for
    the tests and benchmarks that play a client against the fd limit."""
    script = (
        "import resource, sys, runpy\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))\n"
        f"sys.argv = ['o2v', 'serve', '--host', '127.0.0.1', '--port', '{port}']\n"
        "runpy.run_module('service.cli', run_name='__main__')\n"
    )
    return [sys.executable, "-c", script]


class ServerProcess:
    """`with ServerProcess(env) as server:` runs `o2v serve` on 127.0.0.1 until /readyz answers 200.

    `command` runs another launcher instead (the container's `serve` script), which must listen on `port`."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        timeout_s: float = 60.0,
        command: Sequence[str] | None = None,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        serve = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.command = [*(command or serve), *args]
        self.timeout_s = timeout_s
        self.log = Path(tempfile.mkstemp(prefix="o2v-serve-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(POLL_S)
        log = self.log.read_text(errors="replace")[-4000:]
        self.__exit__()
        raise RuntimeError(f"o2v serve did not become ready in {self.timeout_s:.0f} s; its log:\n{log}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)
