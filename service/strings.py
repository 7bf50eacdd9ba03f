"""The one rule for every caller string that is stored, queried or tokenized: it must be encodable as UTF-8.

Python's json (which FastAPI parses bodies with) turns an escaped lone surrogate such as "\\ud800" into a str that
SQLite, orjson, Milvus and the tokenizer all fail on later, as a 500. Checking at the door turns it into a 422 that
names the field. `check_utf8` is for plain code (raises ValueError); `Utf8Str` is the pydantic type using it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def unencodable_at(value: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None when there is none."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_utf8(value: str) -> str:
    """The string unchanged, or ValueError saying where its lone surrogate is."""
    at = unencodable_at(value)
    if at is not None:
        raise ValueError(f"has a lone surrogate (U+{ord(value[at]):04X}) at character {at}; text must be valid UTF-8")
    return value


Utf8Str = Annotated[str, AfterValidator(check_utf8)]
"""A str that is valid UTF-8 (pydantic answers a lone surrogate with a validation error naming the field)."""
