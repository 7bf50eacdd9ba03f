"""Request limits: the body-size middleware, and the request-schema limits that come from the settings and the served
model, checked at request time and stated in the OpenAPI schema.

How a schema states a limit. Request models live at module level (`service/api/schemas/`). A field whose bound is a
setting or a fact of the served model carries a `Limit` marker naming a field of `Limits`:

    class EmbedRequest(BaseModel):
        texts: Texts                                     # 1..max_batch_size texts of 1..max_text_chars characters
        dimensions: Annotated[int, Field(ge=1), Limit("maximum", "dim"), JSON_INTEGER] | None = None
        ids: Annotated[list[int], Field(min_length=1), Limit("maxItems", "max_get_ids")]

`Limit(keyword, name)` takes a JSON Schema keyword (maxItems, maxLength, maxProperties, maximum, exclusiveMaximum,
minimum) and a `Limits` field; a name `Limits` lacks fails at import. It validates with pydantic's own error (type
and message as `Field(max_length=...)`, `Field(le=...)`... give them) against the limits of the app serving the
request, and it leaves `"x-o2v-limits": {keyword: name}` in the JSON Schema, which the app's /openapi.json replaces
with the number. A schema written by hand (`WithJsonSchema`, `openapi_extra`) states a limit with
`stated(maxItems="max_batch_size")` merged into its dict, or a description with `stated(description="at most
{max_filter_keys} keys")` (a `str.format` template over the `Limits` fields). A handler reads a limit with `current()`.

`install(app, limits)` (create_app calls it) adds the middleware that makes `limits` the request's own (a context
variable: each app in a process keeps its limits) and fills the app's OpenAPI schema. Validation outside a request
(a test, a tool) runs inside `applied(limits)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticKnownError, core_schema
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import ApiError, error_response
from service.index.metadata import MAX_FILTER_KEYS
from service.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.encoders.base import Encoder


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


class BodyLimitMiddleware:
    """413 for a body over `limit_for(path)` bytes: at once when Content-Length says so, else as soon as the
    bytes received pass it, so an oversized body is never held in memory whole."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await error_response(ApiError(413, _too_large(limit), field="body"))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


VISIBLE = (
    r"[^\u0000-\u0020\u007f-\u00a0\u00ad\u0300-\u036f\u0600-\u0605\u061c\u06dd\u070f\u1680\u180b-\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufe00-\ufe0f\ufeff"
    r"\ufff9-\ufffb\ufffd]"
)
"""One character the tokenizer keeps: not whitespace, a control or format character (zero-width, BOM, soft hyphen,
bidi marks), a lone Latin combining mark, private use or U+FFFD. A text of those alone has no token and embedded to
one constant vector (two of them: cosine 1.0). Checked against the bundled tokenizer over the BMP; lone combining
marks of other scripts and astral tag or private-use characters still pass (they embed as [UNK], like an emoji).
The same pattern (ECMA and Python read it alike) goes into the OpenAPI schema."""
_VISIBLE = re.compile(VISIBLE)


def visible(value: str) -> str:
    """The text unchanged, or ValueError when it has no visible character (pydantic names the field: `input[3]`)."""
    if _VISIBLE.search(value) is None:
        raise ValueError("the text has nothing to embed: only whitespace, control or format characters")
    return value


def _json_integer(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""JSON Schema's `integer`: 74 and 74.0, not `true` or "74" (pydantic's lax int reads both as numbers). Put it last
in `Annotated[int, ...]`, after the bounds, so that the schema keeps its minimum and maximum."""


@dataclass(frozen=True)
class Limits:
    """The numbers request schemas are checked against: the settings' limits and the served model's facts."""

    max_text_chars: int
    max_batch_size: int
    max_token_ids: int
    max_top_k: int
    max_filter_keys: int
    max_clusters: int
    max_get_ids: int
    max_scroll_limit: int
    max_search_batch: int
    max_invocation_instances: int
    max_invocation_tokens: int
    dim: int
    max_seq_len: int
    max_token_id: int  # encoder 0's largest token id
    in0_vocab_size: int
    in1_vocab_size: int

    @classmethod
    def of(cls, settings: Settings, encoder: Encoder) -> Limits:
        model = encoder.model
        return cls(
            max_text_chars=settings.limits.max_text_chars,
            max_batch_size=settings.limits.max_request_texts,
            max_token_ids=settings.limits.max_token_ids,
            max_top_k=settings.limits.max_top_k,
            max_filter_keys=MAX_FILTER_KEYS,
            max_clusters=settings.limits.max_clusters,
            max_get_ids=settings.limits.max_get_ids,
            max_scroll_limit=settings.limits.max_scroll_limit,
            max_search_batch=settings.limits.max_search_batch,
            max_invocation_instances=settings.limits.max_invocation_instances,
            max_invocation_tokens=settings.limits.max_invocation_tokens,
            dim=encoder.dim,
            max_seq_len=model.max_seq_len("in0"),
            max_token_id=model.vocab_size("in0") - 1,
            in0_vocab_size=model.vocab_size("in0"),
            in1_vocab_size=model.vocab_size("in1"),
        )

    def value(self, name: str) -> int | float:
        number: int | float = getattr(self, name)
        return number


NAMES = frozenset(f.name for f in fields(Limits))
_current: ContextVar[Limits] = ContextVar("o2v_limits")


def current() -> Limits:
    """The limits of the app serving this request."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("request schemas validated outside a request: wrap the call in limits.applied()") from None


@contextmanager
def applied(limits: Limits) -> Iterator[None]:
    """Validate with `limits` inside the block (what the middleware does for each request)."""
    token = _current.set(limits)
    try:
        yield
    finally:
        _current.reset(token)


Keyword = Literal["maxItems", "maxLength", "maxProperties", "maximum", "exclusiveMaximum", "minimum"]
MARK = "x-o2v-limits"
BOUNDS = ("maximum", "exclusiveMaximum", "minimum")
_FIELD_TYPES: dict[type, str] = {list: "List", tuple: "Tuple", dict: "Dictionary", set: "Set", frozenset: "Frozenset"}


@dataclass(frozen=True)
class Limit:
    """`Annotated` marker: the value's size or bound is the `Limits` field `name`, as JSON Schema's `keyword` says.
    Sizes are checked before the value is validated further (as pydantic checks its own max_length: a long list
    is refused before its items are read), bounds after (the value is a number by then)."""

    keyword: Keyword
    name: str

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise ValueError(f"{self.name!r} is not a field of Limits: {sorted(NAMES)}")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if self.keyword not in BOUNDS:
            return core_schema.no_info_before_validator_function(self._size, schema)
        return core_schema.no_info_after_validator_function(self._bound, schema)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        json_schema[MARK] = {**json_schema.get(MARK, {}), self.keyword: self.name}
        return json_schema

    def _size(self, value: Any) -> Any:
        limit = current().value(self.name)
        if isinstance(value, str) and self.keyword == "maxLength" and len(value) > limit:
            raise PydanticKnownError("string_too_long", {"max_length": limit})
        field_type = _FIELD_TYPES.get(type(value))
        if field_type is not None and self.keyword in ("maxItems", "maxProperties") and len(value) > limit:
            actual = None if isinstance(value, dict) else len(value)  # pydantic's own words for a dict: "not more"
            raise PydanticKnownError(
                "too_long", {"field_type": field_type, "max_length": limit, "actual_length": actual}
            )
        return value

    def _bound(self, value: Any) -> Any:
        limit = current().value(self.name)
        if self.keyword == "maximum" and value > limit:
            raise PydanticKnownError("less_than_equal", {"le": limit})
        if self.keyword == "exclusiveMaximum" and value >= limit:
            raise PydanticKnownError("less_than", {"lt": limit})
        if self.keyword == "minimum" and value < limit:
            raise PydanticKnownError("greater_than_equal", {"ge": limit})
        return value


def stated(**keywords: str) -> dict[str, Any]:
    """A hand-written schema's limits: `{**schema, **stated(maxItems="max_batch_size")}`; a value with braces is a
    template (`description="at most {max_filter_keys} keys"`) formatted with the `Limits` fields."""
    for value in keywords.values():
        if "{" not in value and value not in NAMES:
            raise ValueError(f"{value!r} is not a field of Limits: {sorted(NAMES)}")
    return {MARK: keywords}


def filled(schema: Any, limits: Limits) -> Any:
    """A copy of `schema` with every `x-o2v-limits` marker replaced by the numbers (or text) it names."""
    if isinstance(schema, list):
        return [filled(item, limits) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: filled(value, limits) for key, value in schema.items() if key != MARK}
    for keyword, name in schema.get(MARK, {}).items():
        if "{" in name:
            out[keyword] = name.format(**vars(limits))
        else:  # bounds are floats in FastAPI's OpenAPI model, sizes integers
            out[keyword] = float(limits.value(name)) if keyword in BOUNDS else limits.value(name)
    return out


class LimitsMiddleware:
    """Makes the app's `Limits` the ones its requests are validated against."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with applied(self.limits):
            await self.app(scope, receive, send)


def install(app: FastAPI, limits: Limits) -> None:
    """Validate `app`'s requests against `limits`, and state them in its OpenAPI schema."""
    app.add_middleware(LimitsMiddleware, limits=limits)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = filled(generate(), limits)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to shape the schema


Text = Annotated[
    str,
    StringConstraints(min_length=1),
    Limit("maxLength", "max_text_chars"),
    AfterValidator(visible),
    Field(json_schema_extra={"pattern": VISIBLE}),
]
"""A string of 1 to O2V_MAX_TEXT_CHARS characters, at least one of them visible (`visible`)."""

Texts = Annotated[list[Text], Field(min_length=1), Limit("maxItems", "max_batch_size")]
"""1 to O2V_MAX_REQUEST_TEXTS texts."""


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


TextOrTexts = Annotated[
    Texts,
    BeforeValidator(_listed),
    WithJsonSchema({"anyOf": [TypeAdapter(Text).json_schema(), TypeAdapter(Texts).json_schema()]}),
]
"""TEI's and OpenAI's `input`: one text or a list of them, validated as a list."""
