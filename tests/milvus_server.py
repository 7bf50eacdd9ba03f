"""A real Milvus server for the tests: PyPI's `milvus` package (embedded Milvus, the Standalone server binary with
embedded etcd and local storage), started once per test run by the session fixture `milvus_server` (conftest).

Each test gets a database of its own (`database(folder)`: the same folder, the same database, so two registries
of one folder are two replicas of one store), dropped with its collections when the test ends. Where the package
is absent the server tests skip, saying so; with `O2V_TEST_MILVUS_SERVER=required` (CI) they fail instead, and a
server that is installed but does not start always fails them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, NamedTuple

from service.index.engines.milvus import embedded
from service.index.engines.milvus.embedded import missing_reason

__all__ = [
    "REQUIRED_ENV",
    "SHORT_SESSIONS",
    "URI_ENV",
    "RunServer",
    "Server",
    "database",
    "discard_shared",
    "drop_databases",
    "missing_reason",
    "poll_loads_quickly",
    "shared_server",
    "wait_until",
]

URI_ENV = "O2V_TEST_MILVUS_URI"
"""The running server's address, for this process and the processes the tests start."""
REQUIRED_ENV = "O2V_TEST_MILVUS_SERVER"
PREFIX = f"o2vtest{os.environ.get('PYTEST_XDIST_WORKER', '')}d"
"""Databases of this test process: under pytest-xdist each worker has its own (`o2vtestgw3d…`), so that one
worker dropping its databases never touches another's on the run's shared server."""
QUICK_TICKS = {
    "QUERYCOORD_CHECKINTERVAL": "100",
    "QUERYCOORD_CHECKCHANNELINTERVAL": "100",
    "QUERYCOORD_CHECKSEGMENTINTERVAL": "100",
    "QUERYCOORD_DISTPULLINTERVAL": "100",
    "PROXY_TIMETICKINTERVAL": "50",
    "QUERYCOORD_UPDATENEXTTARGETINTERVAL": "0.1",
}
"""Milvus settings (as its environment overrides) for a server that holds a test's few tiny collections: the query
coordinator's checks and distribution pulls every 100 ms instead of 0.5-1 s, and the proxy's time tick every 50 ms
instead of 200 ms. Every test makes and loads collections and reads Session or Strong, which wait for these ticks:
with Milvus' defaults a test on the server spends most of its time waiting (a load 2.5-4 s, a Strong read about
0.2 s); these halve that, for about 0.04 of a core more while the server idles.

The target observer's pass every 0.1 s (in seconds; Milvus 2.3 reads a fraction) instead of every 10 s: a load ends
when the collection observer, on a fixed 1 s tick that no setting changes in 2.3, finds the collection's current
target made, and with the default pass that target is only made when that observer asks, at one tick, so a load
waited for the next one (two ticks, 1.7-2 s). Made within 0.1 s of the query node taking the collection, the
target is ready at the first tick: a load takes 0.4-1.3 s (about 1 s). Each pass refreshes the targets of every
loaded collection: about 0.007 of a core per collection loaded, and 5 lines of its log a pass."""

LOAD_POLL_S = 0.05
"""How often pymilvus asks, in this process, whether a load has ended (its default 0.2 s): the test server ends
one on its collection observer's 1 s tick, and a load's caller learns it half a poll later on average; at 0.05 s
that is about 0.075 s less a load, for a few more cheap calls."""


def poll_loads_quickly() -> None:
    """pymilvus polls loads every LOAD_POLL_S in this process (a process setting, not the server's)."""
    from pymilvus.settings import Config

    Config.WaitTimeDurationWhenLoad = LOAD_POLL_S


SHORT_SESSIONS = {"COMMON_SESSION_TTL": "5"}
"""For a server a test kills and restarts: its components' sessions (etcd leases) last 5 s instead of 30. The
restarted server takes its collections back only once the killed process' sessions have expired, and its embedded
etcd keeps their leases across the restart, so with the default a collection is loaded and answers again about
30 s after the restart instead of about 5 s. Not for a server a test pauses longer than that, nor for the run's
server on a loaded machine: a server whose own session expires stops."""


class Server(embedded.Server):
    """The embedded server with QUICK_TICKS and `settings` (Milvus settings, as environment overrides), set in the
    environment it starts with (also when restarted); this process then polls loads every LOAD_POLL_S."""

    def __init__(self, base: Path, settings: dict[str, str] | None = None) -> None:
        super().__init__(base)
        self.settings = {**QUICK_TICKS, **(settings or {})}

    def start(self, timeout: float = embedded.START_S) -> None:
        saved = {name: os.environ.get(name) for name in self.settings}
        os.environ.update(self.settings)  # the package hands the server a copy of this environment
        try:
            super().start(timeout)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name)
                else:
                    os.environ[name] = value
        poll_loads_quickly()

    def discard(self) -> None:
        """Stop it at once: a test server's data is not kept, and `stop` gives a graceful stop (30 s) 5 s first."""
        if self.server.server_proc is not None and self.server.server_proc.poll() is None:
            self.kill()
        else:
            self.stop()


SHARED, SHARED_BASE = "milvus-server.json", "milvus-server"
"""Under pytest-xdist, the run's one server: its address and process id, in the folder all workers share."""


class RunServer(NamedTuple):
    """The run's server as the `milvus_server` fixture gives it: its address and its folder."""

    uri: str
    base: Path


DETACHED: list[Any] = []
"""The shared server's process, when this worker started it."""


def shared_server(root: Path) -> RunServer:
    """The address of the run's server shared by the xdist workers of `root` (their common temporary folder): the
    first worker that needs it starts it, the others wait on the lock and connect. One server, not one a worker:
    each costs seconds of CPU to start and a steady share of a core for its ticks. `discard_shared` kills it."""
    from filelock import FileLock

    record = root / SHARED
    with FileLock(str(root / (SHARED + ".lock"))):
        if not record.exists():
            server = Server(root / SHARED_BASE)
            server.start()
            record.write_text(json.dumps({"uri": server.uri, "pid": server.process.pid}))
            DETACHED.append(server.process)
            server.server.server_proc = None  # the package stops its server when the object goes: this worker may
            # finish before the others, so the controller stops it (`discard_shared`)
    poll_loads_quickly()  # also in the workers that connect to the server another one started
    return RunServer(str(json.loads(record.read_text())["uri"]), root / SHARED_BASE)


def discard_shared(root: Path) -> None:
    """Kill the shared server of `root`, if a worker started one (the xdist controller, once every worker is done)."""
    record = root / SHARED
    if record.exists():
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(int(json.loads(record.read_text())["pid"]), signal.SIGKILL)
        record.unlink()


def database(folder: Path) -> str:
    """The test database of `folder`, made if missing: letters and digits, as Milvus wants."""
    name = PREFIX + hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:20]
    client = admin()
    try:
        if name not in client.list_databases():
            client.create_database(name)
    finally:
        client.close()
    return name


def admin(db: str = "") -> Any:
    from pymilvus import MilvusClient

    return MilvusClient(uri=os.environ[URI_ENV], db_name=db, timeout=30)


def drop_databases() -> None:
    """Drop the test databases (the running test's, and those of processes it started), their collections first:
    Milvus refuses to drop a database that has any, and 2.3 allows 64 databases."""
    client = admin()
    try:
        for name in client.list_databases():
            if name.startswith(PREFIX):
                inside = admin(name)  # not use_database: pymilvus 3 checks it with a call Milvus 2.3 lacks
                try:
                    for collection in inside.list_collections():
                        inside.drop_collection(collection)
                finally:
                    inside.close()
                client.drop_database(name)
    finally:
        client.close()


def wait_until(check: Any, timeout: float = 30.0, every: float = 0.1) -> Any:
    """`check()`'s first truthy answer within `timeout` seconds; AssertionError past it."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(every)
