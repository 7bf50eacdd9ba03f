"""Request and response models of the collection routes (service/api/collections/).

Request models are strict: no unknown fields, no "5" for 5 or true for 1, no NaN or Infinity (Python's json parses
those tokens, and 1e400, into floats). Response models are what the handlers answer: they build them from the
results of service.index (`routing.answer` renders them), so the OpenAPI schema is the shape on the wire.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from service.api import limits
from service.api.limits import Limit, stated
from service.index.base import MAX_ID_CHARS, Item
from service.index.classify import DEFAULT_MIN_SCORE
from service.index.cluster import SEED_MAX, SEED_MIN
from service.index.config import INDEX_PARAM_MAX, INDEX_PARAM_MIN, Kind
from service.strings import Utf8Str, check_utf8

IndexKind = Kind
MAX_DIM = 65_536
ItemId = Annotated[Utf8Str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
Text = Annotated[limits.Text, AfterValidator(check_utf8)]
Numbers = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]
TopK = Annotated[int, Field(ge=1), Limit("maximum", "max_top_k")]
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
FILTER_DESCRIPTION = stated(description="exact match on metadata: {{key: scalar}}, at most {max_filter_keys} keys")
Filter = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "additionalProperties": _SCALAR, **stated(maxProperties="max_filter_keys")}),
    Field(
        json_schema_extra=stated(description="exact match on metadata: {{key: scalar}}, at most {max_filter_keys} keys")
    ),
]
"""service.index checks the keys and values (at most MAX_FILTER_KEYS keys, scalar values)."""


class StrictModel(BaseModel):
    """A request model: unknown fields, coerced values and non-finite numbers refused (STRICT)."""

    model_config = STRICT


def text_or_vector(schema: dict[str, Any], model: type[TextOrVector]) -> None:
    """JSON schema: the object has a (non-null) `text_field` or `vector`; with oneOf, not both."""
    text = {"required": [model.text_field], "properties": {model.text_field: {"type": "string"}}}
    vector = {"required": ["vector"], "properties": {"vector": {"type": "array"}}}
    schema[model.combine] = [text, vector]


class TextOrVector(StrictModel):
    """A request given as a text (embedded here) or as a vector; its JSON schema says so, and the routes check it."""

    model_config = ConfigDict(json_schema_extra=text_or_vector)
    text_field: ClassVar[str] = "text"
    combine: ClassVar[str] = "oneOf"
    """anyOf where both may come (an item's vector then stands for its text)."""


def _index_param(name: str, description: str) -> Any:
    """An optional index parameter of a create request, bounded as the engines accept it (INDEX_PARAM_MIN/MAX)."""
    return Field(None, description=description, ge=INDEX_PARAM_MIN[name], le=INDEX_PARAM_MAX[name])


class CreateRequest(StrictModel):
    """Index kind and parameters; those left out take the defaults of service/index/config.py."""

    index: IndexKind | None = None
    m: int | None = _index_param("m", "hnsw, hnsw_sq8: graph neighbours per node")
    ef_construction: int | None = _index_param("ef_construction", "hnsw, hnsw_sq8: build-time beam")
    ef_search: int | None = _index_param("ef_search", "hnsw, hnsw_sq8: query-time beam")
    nlist: int | None = _index_param("nlist", "ivf, ivf_pq: inverted lists")
    nprobe: int | None = _index_param("nprobe", "ivf, ivf_pq: lists scanned per query")
    min_train: int | None = _index_param("min_train", "ivf, ivf_pq: vectors stored before it trains")
    pq_m: int | None = _index_param("pq_m", "ivf_pq: bytes per vector (parts of the product quantizer)")
    rerank: int | None = _index_param("rerank", "hnsw_sq8, ivf_pq: candidates beyond top_k re-ranked exactly")
    min_score: float | None = Field(
        None, description="classify's default min_score for this collection; replaces a calibration's"
    )


class ItemIn(TextOrVector):
    combine = "anyOf"
    id: ItemId
    text: Text | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    vector: Numbers | None = Field(None, description="a precomputed embedding; the text is then not embedded")


class UpsertRequest(StrictModel):
    items: Annotated[list[ItemIn], Field(min_length=1), Limit("maxItems", "max_batch_size")]


class SearchRequest(TextOrVector):
    text_field = "query"
    query: Text | None = None
    vector: Numbers | None = None
    top_k: TopK = 10
    filter: Filter | None = None


class BatchSearchRequest(StrictModel):
    queries: Annotated[list[SearchRequest], Field(min_length=1), Limit("maxItems", "max_search_batch")]


class ClassifyRequest(TextOrVector):
    text: Text | None = None
    vector: Numbers | None = None
    label_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] = "label"
    k: TopK = 10
    min_score: float | None = Field(
        None,
        description=f"default: the collection's (PUT or o2v index calibrate), else {DEFAULT_MIN_SCORE} (no threshold)",
    )


class ClusterRequest(StrictModel):
    k: Annotated[
        int,
        Field(ge=1, description="also: k × items × 5 ≤ O2V_MAX_CLUSTER_WORK"),
        Limit("maximum", "max_clusters"),
    ]
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] = 1234
    representatives: Annotated[int, Field(ge=0, le=100)] = 3


class GetItemsRequest(StrictModel):
    ids: Annotated[list[ItemId], Field(min_length=1), Limit("maxItems", "max_get_ids")]
    with_vector: bool = False


class ScrollRequest(StrictModel):
    limit: Annotated[int, Field(ge=1), Limit("maximum", "max_scroll_limit")] = 100
    cursor: Annotated[str, StringConstraints(min_length=2, max_length=8 * MAX_ID_CHARS)] | None = Field(
        None, description="next_cursor of the previous page; absent for the first"
    )
    filter: Filter | None = None
    with_vector: bool = False


class CountRequest(StrictModel):
    filter: Filter | None = None


class ReembedRequest(StrictModel):
    model: str | None = Field(None, description="a model of GET /v1/models (default: the served model)")
    adopt_min_score: bool = Field(
        False,
        description="when the re-embedding finishes, make the model's calibrated min_score (its adaptation job's, "
        "on its held-out split: GET /v1/models/{model} evaluation.adapted.min_score) the collection's classify "
        "default; 422 for a model without one",
    )


class FromIndex(BaseModel):
    """An answer read from service.index's result (a dataclass: Hit, Classification, Clustering) by attribute."""

    model_config = ConfigDict(from_attributes=True)


class CollectionInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    count: int
    dim: int | None = Field(description="set by the first vectors stored")
    index: IndexKind


class ReembedStatus(BaseModel):
    state: Literal["running", "done", "failed"]
    model: str = Field(description="fingerprint of the model embedding the texts")
    done: int
    total: int | None
    error: str | None = None
    min_score: float | None = Field(None, description="the min_score the collection adopts when done (adopt_min_score)")


class BrokenCollection(BaseModel):
    name: str
    message: str = Field(description="why it cannot be opened; its own routes answer 409 with the same")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]
    broken: list[BrokenCollection] = Field(default_factory=list, description="collections that cannot be opened")


class Upserted(BaseModel):
    upserted: int


class ItemOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    vector_source: Literal["model", "caller"] = Field(
        description="model: embedded from the text by the collection's model; caller: sent with the item"
    )
    vector: list[float] | None = Field(None, description="the stored unit vector, when asked for")

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        """The item as stored; its vector only when the read asked for it (left unset otherwise)."""
        vector = {"vector": item.vector.tolist()} if item.vector is not None else {}
        source = "caller" if item.given else "model"
        return cls(id=item.id, text=item.text, metadata=item.metadata, vector_source=source, **vector)


class ItemsResponse(BaseModel):
    items: list[ItemOut] = Field(description="the items found, in the order asked")
    missing: list[str] = Field(description="ids asked for that are not stored")


class ScrollResponse(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = Field(description="pass it back for the next page; null after the last one")


class CountResponse(BaseModel):
    count: int


class HitOut(FromIndex):
    id: str
    score: float = Field(description="cosine similarity to the query")
    text: str
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[HitOut]


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse] = Field(description="one answer per query, in order")


class ClassifyResponse(FromIndex):
    label: Any = Field(description="the winning label value, or null: out of scope (confidence below min_score)")
    confidence: float = Field(description="Σ cosine of the winner's voters / number of neighbours")
    neighbors: list[HitOut]


class Representative(FromIndex):
    id: str
    text: str


class ClusterOut(FromIndex):
    cluster: int
    size: int
    representatives: list[Representative]


class ClusterResponse(FromIndex):
    clusters: list[ClusterOut]
    assignments: dict[str, int]
