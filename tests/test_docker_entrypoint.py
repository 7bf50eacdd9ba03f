"""The container's scripts, run outside Docker (no Docker here; hadolint lints the Dockerfile in CI): `serve`, what
SageMaker runs as `docker run IMAGE serve`, answers its contract on SAGEMAKER_BIND_TO_PORT, serves only a model of
ours from /opt/ml/model, and the HEALTHCHECK script sees the server up and then down."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.api.server import sagemaker_model
from service.settings import DEFAULT_MODEL_DIR, REPO
from tests.server_process import ServerProcess, free_port

SERVE = REPO / "docker" / "serve"
HEALTHCHECK = REPO / "docker" / "healthcheck"
VENV_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # `o2v` of this venv


def _healthcheck(env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env={**os.environ, **env}, timeout=30).returncode


def test_serve_is_the_sagemaker_contract_and_the_healthcheck_follows_it(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "opt-ml-model").mkdir()  # SageMaker model created without model data: the baked-in model serves
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "O2V_PORT": str(port),  # the healthcheck's other port: nothing else on this machine is asked
        "O2V_HOST": "127.0.0.1",
        "O2V_DATA_DIR": str(tmp_path),
        "O2V_ONNX_INTRA_OP_THREADS": "1",
        "O2V_SAGEMAKER_MODEL_DIR": str(tmp_path / "opt-ml-model"),
        "PATH": VENV_PATH,
    }
    with ServerProcess(env, command=[str(SERVE)], port=port) as server:
        assert "holds no model: serving the baked-in model" in server.log.read_text()
        assert httpx.get(f"{server.url}/ping").json() == {"status": "ok"}
        embed = {"instances": [{"in0": [2023, 2003]}, {"in0": [1037]}]}  # one input type per request, as on AWS
        predictions = httpx.post(f"{server.url}/invocations", json=embed).json()["predictions"]
        assert [len(p["embeddings"]) for p in predictions] == [384, 384]
        pairs = {"instances": [{"in0": [1037], "in1": [3899]}]}
        assert len(httpx.post(f"{server.url}/invocations", json=pairs).json()["predictions"][0]["scores"]) == 1
        body = httpx.post(f"{server.url}/embed", content=b"x" * 3_000_000, headers={"content-type": "application/json"})
        assert body.status_code == 400  # read whole, not 413: the --sagemaker body limit (6 MiB) is in force
        assert _healthcheck(env) == 0
    assert server.process is not None and server.process.returncode in (0, -signal.SIGTERM)  # `exec`: no shell left
    assert _healthcheck(env) == 1


@pytest.mark.parametrize("artifact", [["model_algo-1"], ["model.tar.gz"], ["model_algo-1", "model_algo-1.params"]])
def test_serve_refuses_a_model_directory_that_is_not_ours(tmp_path: Path, artifact: list[str]) -> None:
    """A SageMaker built-in Object2Vec artifact in /opt/ml/model must stop the start, not be passed over for the
    baked-in model (which would answer 200 with embeddings of another vocabulary)."""
    for name in artifact:
        (tmp_path / name).write_bytes(b"\x00" * 16)
    env = {**os.environ, "O2V_SAGEMAKER_MODEL_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": str(free_port())}
    env.update(O2V_HOST="127.0.0.1", O2V_DATA_DIR=str(tmp_path / "data"), PATH=VENV_PATH)
    done = subprocess.run([str(SERVE)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    for expected in [*artifact, str(tmp_path), "encoder.onnx", "hyperparameters.json", "o2v export"]:
        assert expected in done.stderr


def test_our_model_directory_in_opt_ml_model_is_the_one_served(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    for name in ("encoder.onnx", "hyperparameters.json", "tokenizer.json"):
        (tmp_path / "model" / name).symlink_to(DEFAULT_MODEL_DIR / name)
    assert sagemaker_model(tmp_path / "model") == tmp_path / "model"
    assert sagemaker_model(tmp_path / "absent") is None


def test_the_image_lets_sagemaker_choose_the_port() -> None:
    """SageMaker sets SAGEMAKER_BIND_TO_PORT only for images labelled accept-bind-to-port=true."""
    labels: dict[str, str] = {}
    instructions = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    runtime_stage = instructions[max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM ")) :]
    for line in runtime_stage:
        words = shlex.split(line, comments=True)
        for word in words[1:] if words and words[0].upper() == "LABEL" else []:
            key, _, value = word.partition("=")
            labels[key] = value
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
