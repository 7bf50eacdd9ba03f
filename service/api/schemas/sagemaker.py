"""Request and response models of SageMaker's /invocations (service/api/sagemaker.py)."""

from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from service.api.limits import Limit, stated
from service.encoders.base import Channel

CHANNELS: tuple[Channel, Channel] = ("in0", "in1")


class EmbeddingPrediction(BaseModel):
    embeddings: list[float]


class ScorePrediction(BaseModel):
    scores: list[float]


class InvocationsResponse(BaseModel):
    predictions: list[EmbeddingPrediction | ScorePrediction]


class PingResponse(BaseModel):
    status: str


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 7 and 7.0, but not 7.5, "7" or true."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


In0Id = Annotated[
    int, Field(strict=True, ge=0), Limit("exclusiveMaximum", "in0_vocab_size"), BeforeValidator(_integral)
]
In1Id = Annotated[
    int, Field(strict=True, ge=0), Limit("exclusiveMaximum", "in1_vocab_size"), BeforeValidator(_integral)
]
In0Ids = Annotated[list[In0Id], Field(min_length=1, description="token ids for encoder 0")]
In1Ids = Annotated[list[In1Id], Field(min_length=1, description="token ids for encoder 1")]


class Instance(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"anyOf": [{"required": [c], "properties": {c: {"type": "array"}}} for c in CHANNELS]},
    )
    in0: In0Ids | None = None
    in1: In1Ids | None = None

    @model_validator(mode="after")
    def _has_input(self) -> Self:
        if self.in0 is None and self.in1 is None:
            raise ValueError("an instance needs in0, in1 or both")
        return self


class InvocationsRequest(BaseModel):
    instances: Annotated[list[Instance], Field(min_length=1), Limit("maxItems", "max_invocation_instances")]


_INSTANCES = {
    "type": "array",
    "minItems": 1,
    "items": Instance.model_json_schema(),
    **stated(maxItems="max_invocation_instances"),
}
_REQUEST = {"type": "object", "required": ["instances"], "properties": {"instances": _INSTANCES}}
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _REQUEST},
            "application/jsonlines": {"schema": {**_INSTANCES, "description": "one instance per line"}},
        },
    }
}
"""The body /invocations reads itself (JSON or JSON Lines), as the OpenAPI schema states it."""
