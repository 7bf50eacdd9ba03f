"""`o2v loadtest`: loadtests/run.py (python -m loadtests.run) under the o2v command, from a source checkout."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _loadtests() -> Any:
    """loadtests/run.py of the source checkout (like bench/, not part of the installed package), or None."""
    from service.settings import REPO

    if not (REPO / "loadtests" / "run.py").is_file():
        return None
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import loadtests.run

    return loadtests.run


def configure(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("loadtest")
    runner = _loadtests()
    if runner is None:
        p.description = "needs a source checkout (loadtests/) with the dev extra installed (locust, psutil)"
    else:
        p.description = "the service on a loopback port under locust's callers: reports, summary, SLO check"
        runner.configure(p)


def run(args: argparse.Namespace) -> int:
    runner = _loadtests()
    if runner is None:
        raise FileNotFoundError("o2v loadtest runs from a source checkout: loadtests/run.py is not here")
    return runner.run(args)
