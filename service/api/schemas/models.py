"""Request models of the model registry routes (service/api/models.py)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service.model.adaptation import MAX_TUNE_TRIALS


class AdaptBody(BaseModel):
    """A team's labelled data: a collection whose items carry `label_key`, or Object2Vec pairs as text."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "intents-v2", "collection": "intents", "label_key": "intent", "seed": 0}]
        },
    )
    name: str = Field(description="the new model's name, [A-Za-z0-9_-]{1,64}")
    collection: str | None = Field(None, description="train on this collection's items and their labels")
    label_key: str | None = Field(None, description="the metadata key holding each item's label")
    oos_label: str | None = Field(
        "oos", description="the label of out-of-scope items: never a class, measured as out-of-scope recall"
    )
    parent: str | None = Field(None, description="the model to start from (default: the default model)")
    held_out_fraction: float = Field(0.2, gt=0, lt=1, description="share of each label held out for early stopping")
    hyperparameters: dict[str, str | int | float] = Field(
        default_factory=dict, description="SageMaker Object2Vec hyperparameters over the adaptation defaults"
    )
    pairs: list[tuple[str, str, Annotated[float, Field(ge=0, le=1)]]] | None = Field(
        None, description="Object2Vec pairs as text, [text0, text1, label in [0, 1]], instead of a collection"
    )
    seed: StrictInt = 0
    tune: StrictInt = Field(
        0,
        ge=0,
        le=MAX_TUNE_TRIALS,
        description=f"tuning trials (at most {MAX_TUNE_TRIALS}): that many fine-tunes over learning_rate, dropout, "
        "weight_decay and mini_batch_size (those not set in `hyperparameters`), the best by the held-out metric kept",
    )
