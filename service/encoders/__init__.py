"""Encoders: text or Object2Vec token ids → embeddings, from the bundled ONNX model or a SageMaker endpoint."""

from __future__ import annotations

from service.encoders.base import Encoder
from service.settings import Settings


def load_encoder(settings: Settings) -> Encoder:
    """The encoder the `backend` setting names, loaded from `model_dir` (and the SageMaker settings)."""
    if settings.backend == "sagemaker":
        from service.encoders.sagemaker import SageMakerEncoder  # boto3 is imported only when it is used

        return SageMakerEncoder.from_settings(settings)
    from service.encoders.onnx import OnnxEncoder

    return OnnxEncoder.from_settings(settings)
