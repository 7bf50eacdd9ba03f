"""Drift stream names: one module holds the built-in names and the rule every other name follows, for the monitor and
the routes alike."""

from __future__ import annotations

import pytest

from service.drift.advice import STREAM_MEANING
from service.drift.errors import InvalidStream
from service.drift.streams import STREAMS, TOKEN_STREAMS, is_stream_name
from tests.drift_fixtures import monitor


@pytest.mark.parametrize("name", ["similarity", "team-a", "tenant:1.search_top1", "x" * 64])
def test_good_names(name: str) -> None:
    assert is_stream_name(name)
    assert monitor().create_stream(name) is (name not in STREAMS)


@pytest.mark.parametrize("name", ["", "x" * 65, "team a", "team/a", "similarity\n", "é", None, 3])
def test_bad_names_are_refused_whole(name: object) -> None:
    """A trailing newline is refused too: the pattern must match the whole name, as the routes' validation does."""
    assert not is_stream_name(name)
    if isinstance(name, str):
        with pytest.raises(InvalidStream, match="stream name must match"):
            monitor().create_stream(name)


def test_builtin_streams_exist_and_say_what_they_carry() -> None:
    m = monitor()
    assert all(m.has_stream(name) for name in STREAMS)
    assert set(STREAMS) | set(TOKEN_STREAMS) <= set(STREAM_MEANING)
