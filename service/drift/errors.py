"""The drift monitor's errors: its branch of the service's error hierarchy (service/errors.py), each naming the field
at fault, so a route answers them as they are (a stream limit names `stream`, a bad baseline `scores`)."""

from __future__ import annotations

from service.errors import Conflict, InvalidRequest


class InvalidStream(InvalidRequest):
    """A stream the monitor cannot make: its name breaks the pattern, or O2V_DRIFT_MAX_STREAMS are in use."""

    field = "stream"


class InvalidBaseline(InvalidRequest):
    """Baseline scores the monitor cannot take: too few, or not finite."""

    field = "scores"


class FixedStream(Conflict):
    """A built-in or configured stream always exists: it cannot be deleted."""

    field = "stream"
