"""An embedded Milvus server: PyPI's `milvus` package (2.3.5, the Milvus Standalone binary with embedded etcd and
local storage, x86-64 Linux; the `milvus-server` extra), for the tests (tests/milvus_server.py) and benchmarks
(`bench.search --stores milvus-server`) to run the engine against a real server, not only Milvus Lite.

`Server(folder)` picks every port free (the package would start from Milvus' defaults, which other processes may
hold), starts the process, waits for its health check, and can kill, pause and restart it over the same data and
address, as the fault tests do. Every server runs the one copy of the binaries the package ships compressed
(`binaries`), unpacked once per machine and package version. Not for production: a cluster is deployed as Milvus
documents it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

START_S = 180.0
BIND_TRIES = 3  # fresh free ports chosen again when one was taken between choosing and binding
ETCD_CONFIG = "ETCD_CONFIG_PATH"
"""Milvus' variable for `etcd.config.path`, the embedded etcd's own configuration."""


def binaries() -> Path | None:
    """The package's binaries, unpacked once into a folder of the temporary directory that this user's servers
    share: the package unpacks them (60 MB of LZMA, 4 CPU-seconds and 5-15 s on a busy machine) into each new
    server's folder, which made every server a test starts pay that again. Unpacked aside and renamed into place,
    so processes starting servers at once never run a half-written copy. None when that folder is not this user's
    alone (anyone may create names in the temporary directory): the package then unpacks per server."""
    import milvus

    shared = Path(tempfile.gettempdir()) / f"o2v-milvus-{milvus.__version__}-{os.getuid()}"
    if not shared.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=shared.name + "-", dir=shared.parent))
        try:
            milvus._initialize_data_files(str(staging))  # the package's own unpacking, with its checksum files
            (staging / "bin").chmod(0o700)
            try:
                os.rename(staging / "bin", shared)
            except OSError:  # another process put its copy there first
                if not shared.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    found = shared.lstat()
    if stat.S_ISLNK(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o022:
        return None
    return shared


def missing_reason() -> str | None:
    """Why no embedded server can start here (the package is absent), or None."""
    try:
        import milvus  # noqa: F401
    except ImportError:
        return "the embedded Milvus server is not installed: pip install 'object2vec-service[milvus-server]'"
    return None


def bind_like_the_server(port: int) -> socket.socket | None:
    """The package's check that `port` is free, binding as the Milvus server's listeners do (Go sets SO_REUSEADDR):
    after a kill, the connections the server held stay in TIME_WAIT on its ports for a minute, which a plain bind
    refuses and the server's own bind does not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        return None
    return sock


def free_port() -> int:
    """A port nothing listens on, on any interface (Milvus' components listen on all of them)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


class Server:
    """One embedded Milvus Standalone process over `base`, every port of its own chosen free (the package would
    start from Milvus' defaults, which other processes here may hold); it can be killed, paused and started again
    over the same data and ports."""

    def __init__(self, base: Path) -> None:
        from milvus import MilvusServer

        self.base = base
        self.server = MilvusServer(wait_for_started=False)
        self.server.set_base_dir(str(base))
        self.server.config.try_bind_port = bind_like_the_server
        self.etcd = base / "embed-etcd.yaml"  # its embedded etcd listens on 2379 and 2380 unless configured
        base.mkdir(parents=True, exist_ok=True)
        shared = binaries()
        if shared is not None and not (base / "bin").exists():
            (base / "bin").symlink_to(shared, target_is_directory=True)  # the package finds them unpacked
        self.started = False  # once started, a restart keeps the ports
        self._choose_ports()

    def _choose_ports(self) -> None:
        """Every port free now, the embedded etcd's included (a port can be taken again before the server binds it:
        `start` then chooses anew)."""
        keys = [key for key in self.server.config.configurable_items if key.endswith("_port")]
        self.server.config.configs.update({key: free_port() for key in keys})
        self.server.webservice_port = free_port()  # health and metrics
        client, peer = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
        self.etcd.write_text(
            f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\ninitial-cluster: default={peer}\n"
        )
        self.port = int(self.server.config.configs["proxy_port"])

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[Any]:
        assert self.server.server_proc is not None, "the server is not running"
        return self.server.server_proc

    def start(self, timeout: float = START_S) -> None:
        """Start and wait for its health check; a server that exits or does not answer in time is an error
        quoting its log."""
        saved = os.environ.get(ETCD_CONFIG)
        os.environ[ETCD_CONFIG] = str(self.etcd)  # the package hands the server a copy of this environment
        try:
            for attempt in range(BIND_TRIES):
                try:
                    self.server.start()
                    break
                except RuntimeError as exc:  # "set query_coord_port=…, but bind failed": taken since it was chosen
                    if "bind failed" not in str(exc) or attempt == BIND_TRIES - 1:
                        raise
                    if self.started:  # a restart keeps its ports (the gateways know them): wait for them instead
                        time.sleep(2.0)
                    else:
                        self._choose_ports()
            self.started = True
        finally:
            if saved is None:
                os.environ.pop(ETCD_CONFIG)
            else:
                os.environ[ETCD_CONFIG] = saved
        health = f"http://127.0.0.1:{self.server.webservice_port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(health, timeout=2) as answer:
                    if b"OK" in answer.read():
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        exited = self.process.poll()
        self.stop()
        raise RuntimeError(f"the Milvus server did not start (exit code {exited}): {self.log_errors()}")

    def log_errors(self) -> str:
        log = self.base / "logs" / "milvus-stdout.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return "\n".join([line[:300] for line in lines if "[ERROR]" in line or "[FATAL]" in line][-5:])

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.server.stop()  # closes its log files; the process is gone already

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.server.server_proc is not None:
            self.resume()
            self.server.server_proc.terminate()
            try:
                self.server.server_proc.wait(timeout=5)  # its graceful stop takes 30 s: the data is not kept
            except subprocess.TimeoutExpired:
                self.server.server_proc.kill()
        self.server.stop()
