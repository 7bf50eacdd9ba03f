"""A real Milvus server for the tests: PyPI's `milvus` package (embedded Milvus, the Standalone server binary with
embedded etcd and local storage), started once per test run by the session fixture `milvus_server` (conftest).

Each test gets a database of its own (`database(folder)`: the same folder, the same database, so two registries
of one folder are two replicas of one store), dropped with its collections when the test ends. Where the package
is absent the server tests skip, saying so; with `O2V_TEST_MILVUS_SERVER=required` (CI) they fail instead, and a
server that is installed but does not start always fails them.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from service.index.engines.milvus.embedded import Server, missing_reason

__all__ = ["REQUIRED_ENV", "URI_ENV", "Server", "database", "drop_databases", "missing_reason", "wait_until"]

URI_ENV = "O2V_TEST_MILVUS_URI"
"""The running server's address, for this process and the processes the tests start."""
REQUIRED_ENV = "O2V_TEST_MILVUS_SERVER"
PREFIX = "o2vtest"


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
