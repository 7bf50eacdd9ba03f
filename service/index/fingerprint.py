"""The fingerprint of the model that embeds texts, which a collection records so that it never compares texts
embedded by two different models (two embedding spaces): `name@<sha256 prefix of encoder.onnx>` for a model
directory (the hash model_card.json records, else the file's own), `sagemaker:<endpoint>` for a SageMaker endpoint,
whose model the endpoint name stands for."""

from __future__ import annotations

from service.datasets import file_sha256
from service.encoders.base import Encoder
from service.model.model_dir import ModelDir

DIGEST_CHARS = 16


def model_fingerprint(encoder: Encoder) -> str:
    endpoint = getattr(encoder, "endpoint", None)
    if getattr(encoder, "backend", None) == "sagemaker" and endpoint:
        return f"sagemaker:{endpoint}"
    return dir_fingerprint(encoder.model)


def dir_fingerprint(model: ModelDir) -> str:
    """A model directory's fingerprint, without loading it (the registry's models are matched by it)."""
    files = model.card.get("files")
    digest = files.get("encoder.onnx") if isinstance(files, dict) else None
    if not isinstance(digest, str) or not digest:
        digest = file_sha256(model.encoder_file("in0"))
    return f"{model.name}@{digest[:DIGEST_CHARS]}"
