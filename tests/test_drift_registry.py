"""The stream registry alone: which streams always exist, how many others may, and what removing one means."""

from __future__ import annotations

import threading

import pytest

from service.drift.errors import FixedStream, InvalidStream
from service.drift.registry import StreamRegistry
from service.drift.streams import STREAMS, TOKEN_STREAMS
from service.errors import NotFound
from tests.drift_fixtures import config


def test_fixed_streams_exist_and_the_token_streams_do_not_count_against_the_limit() -> None:
    registry = StreamRegistry(config(max_streams=5, streams=["team-a"]), token_streams=True)
    assert registry.names()[:3] == list(STREAMS) and set(TOKEN_STREAMS) <= set(registry.names())
    assert registry.fixed == (*STREAMS, *TOKEN_STREAMS, "team-a")
    assert registry.create("team-b") and not registry.create("team-b")  # 5 with the 3 built-in and team-a
    with pytest.raises(InvalidStream, match="at most 5 drift streams"):
        registry.create("team-c")
    assert registry.track("team-c") is None  # the request path drops it instead


def test_removing_refuses_a_fixed_stream_and_names_an_unknown_one() -> None:
    registry = StreamRegistry(config(), token_streams=False)
    registry.create("custom")
    with pytest.raises(FixedStream):
        registry.remove("similarity")
    registry.remove("custom")
    with pytest.raises(NotFound, match="custom"):
        registry.remove("custom")
    assert "custom" not in registry


def test_discard_removes_only_the_entry_it_was_given() -> None:
    """A stream deleted and made again meanwhile is another entry: undoing the first one leaves it."""
    registry = StreamRegistry(config(), token_streams=False)
    first = registry.track("custom")
    assert first is not None
    registry.remove("custom")
    second = registry.track("custom")
    registry.discard("custom", first)
    assert registry.get("custom") is second
    similarity = registry.get("similarity")
    assert similarity is not None
    registry.discard("similarity", similarity)  # a fixed stream is never discarded
    assert registry.get("similarity") is similarity


def test_streams_made_at_once_are_made_once_and_within_the_limit() -> None:
    registry = StreamRegistry(config(max_streams=10), token_streams=False)
    names = [f"s{i % 12}" for i in range(240)]
    barrier = threading.Barrier(8)

    def make(part: list[str]) -> None:
        barrier.wait()
        for name in part:
            registry.track(name)

    threads = [threading.Thread(target=make, args=(names[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry.names()) == 10  # 3 built-in and 7 of the 12 names, whichever came first
    assert all(registry.track(name) is registry.get(name) for name in registry.names())
