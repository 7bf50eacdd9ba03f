"""Limits in process: per-token answers, metric labels, secrets in errors, keys, stream names, the model's
vocabulary and the schema's access each hold their limit as a class (the HTTP connection limits:
test_limits_connections.py, against a real server)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from service.drift.metrics import DriftCollector
from service.encoders import embedder as embedder_module
from service.encoders.onnx import OnnxEncoder
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR, MIN_KEY_CHARS, Settings
from tests.drift_fixtures import config, monitor
from tests.gateway_fixtures import client, model_copy

WRITE_KEY = "hardening-limits-write-key-7Tq"
READ_KEY = "Rk-hardening-limits-read-key-4Zp"
SECRET_LEAKS = (WRITE_KEY, READ_KEY, "Rk-", "milvus-token-value-8Hd")


# /tokenize: tokens per answer and tokenizations in flight
def test_tokenize_over_the_token_limit_is_a_422_naming_inputs_and_the_limit() -> None:
    with client(max_tokenize_tokens=1000) as c:
        answer = c.post("/tokenize", json={"inputs": ["!" * 600, "!" * 600]})
        assert answer.status_code == 422, answer.text[:300]
        error = answer.json()["error"]
        assert error["field"] == "inputs" and "1000" in error["message"]
        assert "O2V_MAX_TOKENIZE_TOKENS" in error["message"]
        assert c.post("/tokenize", json={"inputs": ["!" * 400, "!" * 400]}).status_code == 200  # 800 tokens


def test_the_probe_s_tokenize_body_is_refused_fast_and_an_answer_at_the_limit_is_bounded() -> None:
    """A 1.97 MB body ({"inputs": ["!"*8192]*240}: 1.97M tokens, which would answer 123 MB) is a 422 found after the
    first chunk, and the largest answer allowed (O2V_MAX_TOKENIZE_TOKENS of them) is a few MB."""
    with client() as c:
        started = time.monotonic()
        answer = c.post("/tokenize", json={"inputs": ["!" * 8192] * 240})
        assert answer.status_code == 422 and time.monotonic() - started < 5
        limit = Settings().limits.max_tokenize_tokens
        at_limit = c.post("/tokenize", json={"inputs": ["!" * 8192] * (limit // 8192)})
        assert at_limit.status_code == 200
        assert sum(len(tokens) for tokens in at_limit.json()) == limit // 8192 * 8192  # TEI's list of token lists
        assert len(at_limit.content) < 80 * limit, len(at_limit.content)  # ~62 bytes a token


def test_long_tokenizations_in_flight_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight concurrent long /tokenize requests with MAX_TOKENIZE_IN_FLIGHT=2: at most two tokenize at once."""
    monkeypatch.setattr(embedder_module, "MAX_TOKENIZE_IN_FLIGHT", 2)
    with client() as c:
        tokenizer = c.app.state.services.encoder.tokenizer  # type: ignore[attr-defined]
        running, most, lock = 0, 0, threading.Lock()
        original = tokenizer.tokens

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                time.sleep(0.05)  # long enough that the eight overlap unless held back
                return original(*args, **kwargs)
            finally:
                with lock:
                    running -= 1

        tokenizer.tokens = counted
        try:
            transport = httpx.ASGITransport(app=c.app)

            async def burst() -> list[int]:
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    calls = [http.post("/tokenize", json={"inputs": ["word " * 200] * 4}) for _ in range(8)]
                    return [a.status_code for a in await asyncio.gather(*calls)]

            assert asyncio.run(burst()) == [200] * 8
        finally:
            del tokenizer.tokens
        assert most == 2


# /metrics: no user-chosen value as a label
def test_drift_metrics_never_carry_a_label_value() -> None:
    """`label_key` may name any metadata key: the classify labels are metadata values (an email here). /metrics,
    open to the scraper, names the per-label rows by rank; GET /drift (behind the read key) names them."""
    m = monitor(config=config(window=200, learn_warmup=0, learn_size=50))
    secret = "bob.ssn-078-05-1120@corp.example"
    rng = np.random.default_rng(7)
    for i in range(120):
        m.record_label(secret if i % 2 else "alice@corp.example", float(rng.uniform(0.6, 0.9)))
    assert any(r["label"] == secret for r in m.stream_report("classify_confidence")["labels"]["labels"])
    registry = CollectorRegistry()
    registry.register(DriftCollector(m))
    text = generate_latest(registry).decode()
    assert 'o2v_drift_label_pvalue{rank="0"}' in text
    assert "corp.example" not in text and "bob" not in text and "alice" not in text


# secrets never in an error, a log line or a repr
def _serve_error(env: dict[str, str]) -> str:
    """What `o2v serve` prints when its settings are refused (it must exit before binding)."""
    run = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    return run.stdout + run.stderr


def test_a_settings_error_never_shows_a_key() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(read_api_key=READ_KEY)
    assert "O2V_API_KEY" in str(caught.value)
    assert not any(leak in str(caught.value) for leak in SECRET_LEAKS), str(caught.value)
    with pytest.raises(ValidationError) as caught:
        Settings(api_key=WRITE_KEY, milvus_token="milvus-token-value-8Hd", port=-1)
    assert "O2V_PORT" in str(caught.value)  # the variable, not the field path (server.port)
    assert not any(leak in str(caught.value) for leak in SECRET_LEAKS), str(caught.value)
    shown = repr(Settings(api_key=WRITE_KEY, read_api_key=READ_KEY, milvus_token="milvus-token-value-8Hd"))
    assert not any(leak in shown for leak in SECRET_LEAKS)


def test_serve_s_settings_error_never_shows_a_key() -> None:
    printed = _serve_error({"O2V_READ_API_KEY": READ_KEY, "O2V_MILVUS_TOKEN": "milvus-token-value-8Hd"})
    assert "O2V_READ_API_KEY is set but O2V_API_KEY is not" in printed
    assert not any(leak in printed for leak in SECRET_LEAKS), printed


# keys
@pytest.mark.parametrize("key", ["Zq", "k7", "a1b2c3d4e5f6g7h"])
def test_a_short_key_is_refused_with_the_minimum(key: str) -> None:
    assert len(key) < MIN_KEY_CHARS
    for field in ("api_key", "read_api_key"):
        with pytest.raises(ValidationError) as caught:
            Settings(**{"api_key": WRITE_KEY, field: key})
        message = str(caught.value)
        assert f"O2V_{field.upper()}" in message and str(MIN_KEY_CHARS) in message and key not in message


def test_identical_read_and_write_keys_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(api_key=WRITE_KEY, read_api_key=WRITE_KEY)
    assert "same as O2V_API_KEY" in str(caught.value) and WRITE_KEY not in str(caught.value)
    Settings(api_key=WRITE_KEY, read_api_key=READ_KEY)


# stream names
@pytest.mark.parametrize("name", [".", "..", "...", ".hidden"])
def test_stream_names_with_a_leading_dot_are_refused_naming_the_field(name: str) -> None:
    """`.` and `..` could be made (curl --path-as-is) but not deleted through clients that normalise paths: no
    stream name may start with a dot, wherever a name comes in."""
    auth = {"Authorization": f"Bearer {WRITE_KEY}"}
    with client(api_key=WRITE_KEY) as c:
        answer = c.put(f"/drift/streams/{name.replace('.', '%2E')}", headers=auth)  # as sent, not normalised
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "stream", answer.text
        pairs = {"pairs": [["a cat", "a dog"]], "stream": name}
        answer = c.post("/similarity", json=pairs, headers=auth)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "stream", answer.text
        assert c.get("/drift", params={"stream": name}, headers=auth).status_code == 422
        assert c.put("/drift/streams/a.b", headers=auth).status_code in (200, 201)  # a dot inside stays allowed
    with pytest.raises(ValueError, match="O2V_DRIFT_STREAMS"):
        monitor(config=config(streams=[name]))


# the model's vocabulary against its embedding table
def test_a_vocabulary_larger_than_the_embedding_table_stops_the_load(tmp_path: Path) -> None:
    folder = model_copy(tmp_path, without=("hyperparameters.json",))
    hp = json.loads((DEFAULT_MODEL_DIR / "hyperparameters.json").read_text())
    hp["enc0_vocab_size"] = int(hp["enc0_vocab_size"]) + 5000
    (folder / "hyperparameters.json").write_text(json.dumps(hp))
    with pytest.raises(ValueError, match="enc0_vocab_size") as caught:
        OnnxEncoder(ModelDir.load(folder))
    assert "embedding table" in str(caught.value) and "hyperparameters.json" in str(caught.value)


# /openapi.json and /docs with a read key
def test_the_schema_and_docs_follow_the_read_key() -> None:
    keyed = {"Authorization": f"Bearer {READ_KEY}"}
    with client(api_key=WRITE_KEY, read_api_key=READ_KEY) as c:
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/docs").status_code in (401, 404) and c.get("/redoc").status_code in (401, 404)
        assert "/tokenize" in c.get("/openapi.json", headers=keyed).json()["paths"]
    with client(api_key=WRITE_KEY, read_api_key=READ_KEY, docs_open=True) as c:
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
    with client(api_key=WRITE_KEY) as c:  # no read key: reads are open, so is the schema
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
    with client(api_key=WRITE_KEY, docs_open=False) as c:  # closed: no /docs; the schema follows the read guard
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 200
