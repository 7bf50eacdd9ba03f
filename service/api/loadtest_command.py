"""`o2v loadtest`: the headless load-test runner (service/tools/loadtest_run.py) under the o2v command."""

from __future__ import annotations

import argparse

from service.settings import REPO


def _checkout() -> bool:
    """locust loads loadtests/locustfile.py by path: it is in a source checkout, not in the installed package."""
    return (REPO / "loadtests" / "locustfile.py").is_file()


def configure(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("loadtest")
    if not _checkout():
        p.description = "needs a source checkout (loadtests/) with the dev extra installed (locust, psutil)"
        return
    from service.tools.loadtest_run import configure as runner_configure

    p.description = "the service on a loopback port under locust's callers: reports, summary, SLO check"
    runner_configure(p)


def run(args: argparse.Namespace) -> int:
    if not _checkout():
        raise FileNotFoundError("o2v loadtest runs from a source checkout: loadtests/locustfile.py is not here")
    from service.tools.loadtest_run import run as runner_run

    return runner_run(args)
