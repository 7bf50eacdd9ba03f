"""Request and response models of the drift routes (service/api/drift.py)."""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, TypeAdapter, WithJsonSchema

from service.api.limits import Text
from service.drift.baseline import MIN_BASELINE

MAX_BASELINE_SCORES = 100_000
MAX_BASELINE_PAIRS = 10_000
SCORE_LIMIT = 1.0e6  # far beyond any similarity score; larger magnitudes overflow the baseline's variance
Score = Annotated[StrictFloat, Field(ge=-SCORE_LIMIT, le=SCORE_LIMIT, allow_inf_nan=False)]  # JSON true is not 1.0


class BaselineOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    stream: str
    baseline: dict[str, Any] = Field(description="source, created, n, mean, std, min, max, quantiles")
    label_spearman: float | None = Field(None, description="Spearman of the pair cosines with the given labels")


def _pair(value: Any) -> Any:
    """[a, b] or [a, b, label] → (a, b, label or None): one tuple type, so that an error names `pairs[9][1]` (with a
    union of the two shapes pydantic names the member it tried instead)."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return (*value, None)
    if isinstance(value, list | tuple) and len(value) == 3 and value[2] is None:
        raise ValueError("a pair's label must be a number")
    return value


_PAIR_SCHEMA = {
    "type": "array",
    "prefixItems": [TypeAdapter(Text).json_schema()] * 2 + [TypeAdapter(Score).json_schema()],
    "minItems": 2,
    "maxItems": 3,
}
Pair = Annotated[tuple[Text, Text, Score | None], BeforeValidator(_pair), WithJsonSchema(_PAIR_SCHEMA)]


class BaselineIn(BaseModel):
    """Exactly one of `scores` (raw scores) or `pairs` (texts the service embeds and scores itself)."""

    model_config = ConfigDict(extra="forbid")
    scores: Annotated[list[Score], Field(min_length=MIN_BASELINE, max_length=MAX_BASELINE_SCORES)] | None = None
    pairs: Annotated[list[Pair], Field(min_length=MIN_BASELINE, max_length=MAX_BASELINE_PAIRS)] | None = None
    source: Annotated[str, Field(max_length=200)] | None = Field(None, description="a note kept with it")
