"""The one settings class: every limit and knob of the service, from O2V_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO / "models" / "object2vec-sts-384"


class Settings(BaseSettings):
    """Defaults suit one 2-core machine serving the bundled model; each can be set as O2V_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="O2V_", extra="ignore")

    # model and backend
    model_dir: Path = DEFAULT_MODEL_DIR
    backend: Literal["onnx", "sagemaker"] = "onnx"
    onnx_intra_op_threads: int = Field(0, ge=0, description="0 = onnxruntime's choice")
    onnx_inter_op_threads: int = Field(1, ge=0)

    # HTTP server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    api_key: str | None = None

    # request limits
    max_batch_size: int = Field(256, ge=1, description="texts in one request")
    max_text_chars: int = Field(8192, ge=1, description="characters in one text")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="request body size")
    max_top_k: int = Field(1000, ge=1)

    # micro-batching
    batch_max_size: int = Field(64, ge=1, description="texts per encoder call")
    batch_max_wait_ms: float = Field(2.0, ge=0.0)
    queue_max_size: int = Field(1024, ge=1, description="texts waiting; beyond it requests get 503")

    # SageMaker backend
    sagemaker_endpoint: str | None = None
    sagemaker_region: str = "us-east-1"
    sagemaker_endpoint_url: str | None = None
    sagemaker_connect_timeout_s: float = Field(2.0, gt=0)
    sagemaker_read_timeout_s: float = Field(70.0, gt=0, description="AWS advises 70 s for a 60 s container")
    sagemaker_max_attempts: int = Field(3, ge=1)
    sagemaker_max_body_bytes: int = Field(6_291_456, ge=1024, description="InvokeEndpoint's 6 MiB limit")

    # data
    data_dir: Path = REPO / "indexes"
    shared_data: Path = REPO.parent / "shared" / "data"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
