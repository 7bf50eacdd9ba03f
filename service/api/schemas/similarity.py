"""Request and response models of POST /similarity (service/api/similarity.py)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from service.api.limits import Limit, Text
from service.drift.streams import STREAM_PATTERN


class SimilarityResult(BaseModel):
    cosine: float = Field(ge=-1.0, le=1.0)
    score: float | None = Field(
        description="Object2Vec's own score: the value for a regression model, the probability of the last class "
        "for a softmax one; null when the model has no scorer"
    )


class SimilarityResponse(BaseModel):
    results: list[SimilarityResult]


class SimilarityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pairs: Annotated[list[tuple[Text, Text]], Field(min_length=1), Limit("maxItems", "max_batch_size")]
    stream: str | None = Field(
        None,
        pattern=STREAM_PATTERN,
        description="drift stream the cosines are counted in (default: similarity); without the API key it "
        "must exist already (built in, O2V_DRIFT_STREAMS, or PUT /drift/streams/{stream})",
    )
    model: str | None = Field(None, description="a model of GET /v1/models (default: the default model)")
