"""End to end: `o2v serve` in a real uvicorn process, called over loopback HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.gateway_fixtures import TEXTS
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"O2V_DATA_DIR": str(tmp_path_factory.mktemp("data")), "O2V_ONNX_INTRA_OP_THREADS": "1"}
    with ServerProcess(env, args=("--sagemaker",)) as running:
        yield running
    assert running.process.returncode in (0, -signal.SIGTERM)  # stopped by SIGTERM, no SIGKILL needed


def test_embeddings_over_http(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post("/v1/embeddings", json={"input": TEXTS})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        vectors = np.array([d["embedding"] for d in answer.json()["data"]])
        assert vectors.shape == (len(TEXTS), 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert http.get("/readyz").json()["status"] == "ready"


def test_concurrent_clients(server):
    def one(i: int) -> list[float]:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.post("/embed", json={"texts": [TEXTS[i % len(TEXTS)]]})
            assert answer.status_code == 200
            return answer.json()["embeddings"][0]

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(24)))
    for i, vector in enumerate(got):
        np.testing.assert_allclose(vector, got[i % len(TEXTS)], rtol=1e-5, atol=1e-6)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'o2v_http_requests_total{method="POST",route="/embed",status="200"} 24.0' in metrics


def test_sagemaker_contract_over_http(server):
    assert httpx.get(f"{server.url}/ping").status_code == 200
    lines = b'{"in0": [2023, 2003]}\n{"in0": [1037], "in1": [3899]}\n'
    headers = {"content-type": "application/jsonlines", "accept": "application/jsonlines"}
    answer = httpx.post(f"{server.url}/invocations", content=lines, headers=headers)
    assert [list(json.loads(line)) for line in answer.text.splitlines()] == [["embeddings"], ["scores"]]


def test_sagemaker_mode_takes_6_mib_bodies_and_no_more(server):
    instances = [{"in0": [1000 + i % 500] * 600} for i in range(1000)]  # about 3 MB
    answer = httpx.post(f"{server.url}/invocations", json={"instances": instances}, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1000
    too_big = httpx.post(f"{server.url}/embed", content=b"x" * 6_300_000, headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["error"]["field"] == "body"


def test_the_service_package_imports_without_torch():
    code = "import sys, service.api.app, service.encoders.sagemaker, service.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
