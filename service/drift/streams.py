"""Drift stream names: the streams the routes feed, the model's token streams, and the one rule every other name
(configured in O2V_DRIFT_STREAMS, made by PUT /drift/streams/{stream}, sent as /similarity's `stream`) must follow."""

from __future__ import annotations

import re

SIMILARITY = "similarity"
"""Pair cosines of POST /similarity (unless the request names another stream)."""
SEARCH_TOP1 = "search_top1"
"""Best-hit score of each text search of a collection."""
CLASSIFY_CONFIDENCE = "classify_confidence"
"""Confidence (the winner's support) of each text classified against a collection."""
STREAMS = (SIMILARITY, SEARCH_TOP1, CLASSIFY_CONFIDENCE)
"""The built-in score streams, in report order."""
LABEL_STREAM = CLASSIFY_CONFIDENCE
"""The stream whose report carries the per-label ranking."""

UNSEEN_TOKEN_RATE = "unseen_token_rate"
UNK_RATE = "unk_rate"
TRUNCATED = "truncated"
TOKEN_STREAMS = (UNSEEN_TOKEN_RATE, UNK_RATE, TRUNCATED)
"""Per-text rates of the tokenized requests, measured against the model's own validation texts."""

STREAM_PATTERN = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,63}$"
"""Bounded, and safe as a URL path segment and a Prometheus label value: no leading dot, so never `.` or `..`,
which clients that normalise paths turn into another URL (the stream could not be deleted)."""
STREAM_NAME = re.compile(STREAM_PATTERN)


def is_stream_name(name: object) -> bool:
    """Whether `name` follows STREAM_PATTERN as a whole (`$` alone would let a trailing newline through)."""
    return isinstance(name, str) and STREAM_NAME.fullmatch(name) is not None
