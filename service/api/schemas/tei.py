"""Request and response models of GET /info and POST /decode (service/api/tei.py)."""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, TypeAdapter, WithJsonSchema

from service.api.limits import JSON_INTEGER, Limit, stated


class Info(BaseModel):
    """TEI's Info; `model_type` says an embedding model and its encoder 0 (pooled_embedding: TEI's "mean")."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_type: dict[str, dict[str, str]]
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int | None = None
    max_client_batch_size: int
    auto_truncate: bool
    tokenization_workers: int
    version: str
    sha: str | None = None
    docker_label: str | None = None


TokenId = Annotated[int, Field(ge=0), Limit("maximum", "max_token_id"), JSON_INTEGER]
"""A token id of encoder 0's vocabulary."""
IdsRow = Annotated[list[TokenId], Field(min_length=1)]
_ROWS_SCHEMA = {**TypeAdapter(list[IdsRow]).json_schema(), "minItems": 1, **stated(maxItems="max_batch_size")}
_IDS_SCHEMA = {"oneOf": [TypeAdapter(IdsRow).json_schema(), _ROWS_SCHEMA]}


def _rows(value: Any) -> Any:
    """One list of token ids as a list of one."""
    return [value] if isinstance(value, list) and value and not isinstance(value[0], list) else value


class DecodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: Annotated[
        list[IdsRow],
        Field(min_length=1),
        Limit("maxItems", "max_batch_size"),
        BeforeValidator(_rows),
        WithJsonSchema(_IDS_SCHEMA),
    ] = Field(description="one list of token ids, or a list of them")
    skip_special_tokens: StrictBool = True
