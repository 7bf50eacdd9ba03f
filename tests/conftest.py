"""Fixtures every test module may use: the collection engine to run a behavioural test on, a tiny public-data
tree in place of ../shared/data, and a small real disk to fill (`small_disk`)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.disk_fixtures import small_disk  # noqa: F401 (a fixture, for every module)
from tests.index_fixtures import STORES, close_opened
from tests.milvus_server import (
    REQUIRED_ENV,
    URI_ENV,
    RunServer,
    Server,
    discard_shared,
    missing_reason,
    shared_server,
)
from tests.public_data_fixtures import write_public_data

WORKER_MEMORY_GB = 3
"""What one test worker may hold at its peak (torch, onnxruntime, a FAISS index and a training run: about 2.2 GiB)."""


def pytest_configure(config: pytest.Config) -> None:
    """The run's processes keep their bytecode (`__pycache__`, ignored by git) even where PYTHONDONTWRITEBYTECODE is
    set, as on CI's machines: a run starts about 130 Python processes (its workers, 25 servers, 14 adaptation jobs, the
    commands it tries), and each compiled the project's modules and rewrote the tests' asserts afresh. Set here, in
    the process that starts the workers, before it starts them: 447 -> 425 and 409 -> 394 CPU-s in alternated runs
    from a tree without `__pycache__`. A tree that cannot be written costs only the writes that fail."""
    if not hasattr(config, "workerinput") and os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers a core (pyproject's `-n auto`): most of a test's time is spent waiting (on the Milvus server's
    ticks, on processes it starts, on sockets), so one a core leaves the cores idle; at most one per
    WORKER_MEMORY_GB of available memory, and at most 8 (each worker imports the whole stack)."""
    import psutil

    by_memory = int(psutil.virtual_memory().available / 2**30 // WORKER_MEMORY_GB)
    return max(1, min(2 * (os.cpu_count() or 1), by_memory, 8))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The behavioural suite runs on the Milvus server once per test, not once per parametrisation: of a test's
    "milvus-server" cases only the first is kept (index kinds, request bodies and such run on the embedded engine
    and Milvus Lite; tests/test_milvus_server.py covers every index kind on the server). Each server case costs
    seconds (a database, a catalog and an items collection made and loaded)."""
    seen: set[tuple[str, str]] = set()
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("store") == "milvus-server":
            key = (item.path.name, item.originalname)  # type: ignore[attr-defined]
            if key in seen:
                dropped.append(item)
                continue
            seen.add(key)
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each engine in turn: "faiss" (SQLite + FAISS), "milvus" (Milvus Lite) and "milvus-server" (the test run's
    Milvus server, started at its first test); Milvus registries close after, the test's databases are dropped."""
    if request.param == "milvus-server":
        request.getfixturevalue("milvus_server")
    yield request.param
    close_opened()


@pytest.fixture(scope="session")
def public_data_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in datasets (tests/public_data_fixtures.py), written once a session; treat as read-only."""
    return write_public_data(tmp_path_factory.mktemp("public-data"))


@pytest.fixture
def public_data(public_data_tree: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """O2V_SHARED_DATA pointing at the stand-in datasets, so service.datasets reads them and never ../shared."""
    monkeypatch.setenv("O2V_SHARED_DATA", str(public_data_tree))
    return public_data_tree


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunServer]:
    """The run's embedded Milvus server (about 10-20 s to start), started at the first test that needs it; its
    address and folder. Under pytest-xdist the workers share one (`shared_server`), killed by the controller at the end
    (`pytest_sessionfinish`); run alone, the session stops its own. Skipped, saying why, where the `milvus` package
    is absent, unless O2V_TEST_MILVUS_SERVER=required (CI); a server that is installed and does not start fails
    every test that needs it."""
    reason = missing_reason()
    if reason is not None:
        if os.environ.get(REQUIRED_ENV) == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    own = None
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run = shared_server(tmp_path_factory.getbasetemp().parent)
    else:
        own = Server(tmp_path_factory.mktemp("milvus-server"))
        own.start()
        run = RunServer(own.uri, own.base)
    os.environ[URI_ENV] = run.uri
    try:
        yield run
    finally:
        os.environ.pop(URI_ENV, None)
        if own is not None:
            own.discard()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The xdist controller kills the server its workers shared (each worker's temporary folder is inside the
    controller's); a worker has nothing to do here, nor a run without xdist (no worker recorded a server)."""
    if not hasattr(session.config, "workerinput"):
        discard_shared(session.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collecting loaded (the whole stack's modules, the schemathesis apps) lives as long as the process: frozen,
    the full garbage collections during the tests no longer walk it each time (2.4 -> 1.5 CPU-s of them in 48 s of
    tests)."""
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The test process is about to exit: the objects its tests loaded (torch, onnxruntime, schemathesis, apps) are
    left out of the interpreter's shutdown garbage collections and go with the process, as a command's do
    (`service.processes.exit_process`): about 2 CPU-s less a worker."""
    gc.freeze()
