"""Request and response models of the rerank routes (service/api/rerank.py)."""

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StrictBool

from service.api.limits import JSON_INTEGER, Limit, Text, Texts, stated
from service.api.schemas.embeddings import Priority, Truncation

ONE_OF_TEXTS_DOCUMENTS: list[JsonValue] = [
    {"required": ["texts"], "not": {"required": ["documents"]}},
    {"required": ["documents"], "not": {"required": ["texts"]}},
]
"""The schema states the rule too (exactly one of the two names), so generated clients and checkers know it."""


class Document(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="position of the text in the request")
    relevance_score: float = Field(description="the score, under the name Cohere's clients read")
    score: float = Field(description="the same score, under TEI's name")
    text: str | None = Field(None, description="the text, when return_documents (TEI: return_text) is true")
    document: Document | str | None = Field(
        None, description="the text when return_documents is true: {text} on Cohere's paths, a string on /rerank"
    )


class RerankResponse(BaseModel):
    id: str
    object: Literal["rerank"] = "rerank"
    model: str
    scorer: Literal["object2vec", "cosine"] = Field(
        description="object2vec: the model's comparator+MLP score (as /similarity's `score`); cosine: the model "
        "has no scorer"
    )
    results: list[RerankResult] = Field(description="best first")
    meta: dict[str, Any]


def _document_text(value: Any) -> Any:
    """Cohere's v1 documents may be objects: `{"text": ...}` is read as its text."""
    if isinstance(value, dict) and set(value) == {"text"}:
        return value["text"]
    return value


DocumentTexts = Annotated[
    list[Annotated[Text, BeforeValidator(_document_text)]], Field(min_length=1), Limit("maxItems", "max_batch_size")
]
TopN = Annotated[int, Field(ge=1), Limit("maximum", "max_batch_size"), JSON_INTEGER]
TokensPerDoc = Annotated[int, Field(le=1 << 31), Limit("minimum", "max_seq_len"), JSON_INTEGER]


class RerankRequest(Truncation):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": ONE_OF_TEXTS_DOCUMENTS})
    query: Text
    # absent is None (defaults are not validated), an explicit null is refused as the schema says
    texts: Texts = Field(None, description="the texts to rank (TEI's name: TEI's answer)")  # type: ignore[arg-type]
    documents: DocumentTexts = Field(
        None,  # type: ignore[arg-type]
        description="the texts to rank, or {text} objects (Cohere's name: Cohere's answer)",
    )
    top_n: TopN | None = Field(None, description="best n only; default all")
    return_documents: StrictBool = Field(
        False, validation_alias=AliasChoices("return_documents", "return_text"), description="add each text"
    )
    raw_scores: StrictBool = Field(
        False, description="a softmax model's log-odds instead of its probability; other scores are raw already"
    )
    max_tokens_per_doc: TokensPerDoc | None = Field(
        None,
        json_schema_extra=stated(
            description="Cohere's; the model reads at most {max_seq_len} tokens of each text, so no lower value "
            "can be honoured"
        ),
    )
    model: str | None = Field(
        None,
        description="a model of GET /v1/models or a name of O2V_MODEL_ALIASES (default: the default model); any "
        "other name is a 404 model_not_found",
    )
    priority: Priority | None = Field(None, description="Cohere's scheduling hint; accepted, requests run in order")
