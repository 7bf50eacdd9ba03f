"""Request and response models of POST /tokenize (service/api/tokenize.py)."""

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from service.api.limits import TextOrTexts


class TokenInfo(BaseModel):
    id: int
    text: str = Field(description="the characters of the input it stands for ([CLS]/[SEP]: the token itself)")
    start: int = Field(description="character offset in the input")
    stop: int
    special: bool


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: TextOrTexts
    add_special_tokens: StrictBool = Field(
        False,
        description="add [CLS]/[SEP]; the model reads texts without them, so the default is false (TEI's: true)",
    )
    prompt_name: None = Field(None, description="TEI's; this model has no prompts, so only null is accepted")
