"""The container's scripts, run outside Docker (no Docker here; hadolint lints the Dockerfile in CI): `serve`, what
SageMaker runs as `docker run IMAGE serve`, answers its contract on SAGEMAKER_BIND_TO_PORT, and the HEALTHCHECK
script sees the server up and then down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from service.api.server import ServerProcess, free_port
from service.settings import REPO

SERVE = REPO / "docker" / "serve"
HEALTHCHECK = REPO / "docker" / "healthcheck"


def _healthcheck(env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env={**os.environ, **env}, timeout=30).returncode


def test_serve_is_the_sagemaker_contract_and_the_healthcheck_follows_it(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "O2V_PORT": str(port),  # the healthcheck's other port: nothing else on this machine is asked
        "O2V_HOST": "127.0.0.1",
        "O2V_DATA_DIR": str(tmp_path),
        "O2V_ONNX_INTRA_OP_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `o2v` of this venv
    }
    with ServerProcess(env, command=[str(SERVE)], port=port) as server:
        assert httpx.get(f"{server.url}/ping").json() == {"status": "ok"}
        instances = {"instances": [{"in0": [2023, 2003]}, {"in0": [1037], "in1": [3899]}]}
        predictions = httpx.post(f"{server.url}/invocations", json=instances).json()["predictions"]
        assert len(predictions[0]["embeddings"]) == 384 and len(predictions[1]["scores"]) == 1
        body = httpx.post(f"{server.url}/embed", content=b"x" * 3_000_000, headers={"content-type": "application/json"})
        assert body.status_code == 400  # read whole, not 413: the --sagemaker body limit (6 MiB) is in force
        assert _healthcheck(env) == 0
    assert server.process is not None and server.process.returncode in (0, -signal.SIGTERM)  # `exec`: no shell left
    assert _healthcheck(env) == 1
