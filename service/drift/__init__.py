"""Drift monitor: live similarity-score windows per stream compared with the model's validation distribution."""

from service.drift.config import DriftConfig
from service.drift.monitor import DriftMonitor
from service.drift.streams import STREAMS
from service.drift.worker import DriftWorker

__all__ = ["STREAMS", "DriftConfig", "DriftMonitor", "DriftWorker"]
