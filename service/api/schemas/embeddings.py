"""Request and response models of the embedding routes (service/api/embeddings.py)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StrictBool

from service.api.limits import JSON_INTEGER, Limit, Text, TextOrTexts, Texts
from service.api.openai_compat import TextOrTokenIds
from service.text import Direction

ONE_OF_TEXTS_INPUTS: list[JsonValue] = [
    {"required": ["texts"], "not": {"required": ["inputs"]}},
    {"required": ["inputs"], "not": {"required": ["texts"]}},
]
Dimensions = Annotated[int, Field(ge=1), Limit("maximum", "dim"), JSON_INTEGER]
"""OpenAI's `dimensions`: 1 to the served model's width."""
Priority = Annotated[int, Field(ge=0, le=1 << 31), JSON_INTEGER]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32 bytes")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens embedded (after truncation)")
    total_tokens: int
    truncated: int = Field(0, description="inputs cut to the model's max_seq_len tokens")


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    dim: int
    model: str
    truncated: int = Field(0, description="texts cut to the model's max_seq_len tokens")


class Truncation(BaseModel):
    """TEI's truncation fields (TEI spells the directions "Right" and "Left"; both spellings are read)."""

    truncate: StrictBool | None = Field(
        True,
        description="cut a text longer than the model's max_seq_len tokens (null: the server's default, true); "
        "false: such a text is a 422",
    )
    truncation_direction: Literal["right", "left", "Right", "Left"] = Field(
        "right", description="right: the end is cut; left: the start is"
    )

    @property
    def direction(self) -> Direction:
        return "left" if self.truncation_direction.lower() == "left" else "right"


class Shaped(Truncation):
    dimensions: Dimensions | None = Field(
        None,
        description="OpenAI's: keep the first k values, re-normalised (the principal ones for a model whose card "
        "records a rotation; other models' first k as they are)",
    )


class EmbeddingsRequest(Shaped):
    """OpenAI's request; `user` is accepted and ignored. `model` may be omitted, the served model's name or one
    of O2V_MODEL_ALIASES (others: 404 model_not_found). Token arrays (cl100k_base) are decoded to their text."""

    model_config = ConfigDict(extra="ignore")
    input: TextOrTokenIds
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class EmbedRequest(Shaped):
    """Ours (`texts`, answered `{"embeddings", "dim", "model", "truncated"}`) or TEI's (`inputs`, one text or a
    list, answered with TEI's bare list of embeddings): exactly one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": ONE_OF_TEXTS_INPUTS})
    # absent is None (defaults are not validated), an explicit null is refused as the schema says
    texts: Texts = Field(None, description="the texts (our shape)")  # type: ignore[arg-type]
    inputs: TextOrTexts = Field(None, description="a text or a list of them (TEI's shape)")  # type: ignore[arg-type]
    normalize: StrictBool = Field(True, description="scale each embedding to unit length")
    prompt_name: None = Field(None, description="TEI's; this model has no prompts, so only null is accepted")
    model: str | None = Field(None, description="a model of GET /v1/models (default: the default model)")


def _not_quantised(kind: object) -> object:
    if kind in ("int8", "uint8", "binary", "ubinary"):
        raise ValueError(f"{kind} embeddings are not served here: float and base64 are")
    return kind


class CohereEmbedRequest(BaseModel):
    """Cohere's v2 embed request, texts only. One encoder embeds queries and documents alike, so `input_type`
    changes nothing; quantised types are refused rather than made up (Cohere does not publish its scales)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(
        None, description="a model of GET /v1/models or one of O2V_MODEL_ALIASES (default: the default model)"
    )
    texts: Texts
    input_type: Literal["search_document", "search_query", "classification", "clustering"] | None = None
    embedding_types: list[Annotated[Literal["float", "base64"], BeforeValidator(_not_quantised)]] = Field(
        ["float"], min_length=1, description="float and base64; Cohere's quantised types are a 422"
    )
    truncate: Literal["NONE", "START", "END"] = Field(
        "END", description="END: the end of a long text is cut, START: its start; NONE: it is a 422"
    )
    output_dimension: Dimensions | None = Field(None, description="as `dimensions`: the first k values, re-normalised")
    priority: Priority | None = Field(None, description="accepted; requests run in order")


class SimilarityParameters(Truncation):
    model_config = ConfigDict(extra="forbid")
    prompt_name: None = Field(None, description="TEI's; this model has no prompts, so only null is accepted")


class SimilarityInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_sentence: Text
    sentences: Texts


class SimilarityRequest(BaseModel):
    """TEI's sentence-similarity request, as huggingface_hub's `sentence_similarity` sends it."""

    model_config = ConfigDict(extra="forbid")
    inputs: SimilarityInput
    parameters: SimilarityParameters | None = None


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its nested models written in place, for a route that states its body itself."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            return (
                resolve(defs[ref.rsplit("/", 1)[1]])
                if ref.startswith("#/$defs/")
                else {key: resolve(value) for key, value in node.items()}
            )
        return [resolve(item) for item in node] if isinstance(node, list) else node

    return resolve(schema)


ROOT_BODY = {"oneOf": [inline_schema(EmbedRequest), inline_schema(SimilarityRequest)]}
"""TEI's root route: an /embed body or a sentence-similarity one."""
