"""Drift monitor: live similarity-score windows per stream compared with the model's validation distribution.

The names below load on first use (PEP 562), not with the package: `o2v drift` (service/drift/commands.py) lives in
it, and the CLI's parser, `o2v --help` included, imports every command module; loading the monitor with it cost each
`o2v` command scipy.stats and numpy (1 to 2.5 s)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.drift.config import DriftConfig
    from service.drift.monitor import DriftMonitor
    from service.drift.streams import STREAMS
    from service.drift.worker import DriftWorker

__all__ = ["STREAMS", "DriftConfig", "DriftMonitor", "DriftWorker"]
_HOME = {"DriftConfig": "config", "DriftMonitor": "monitor", "STREAMS": "streams", "DriftWorker": "worker"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
