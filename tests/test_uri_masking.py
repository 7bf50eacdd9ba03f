"""Credentials in `O2V_SAGEMAKER_ENDPOINT_URL` and `O2V_MILVUS_URI` (`http://user:password@host`, a token in the
query) never appear in what the service shows: its log, `/readyz`, error answers, `o2v`'s messages and `--help`.
botocore quotes the endpoint URL, credentials and all, when it cannot connect; the service passes that message on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.errors import Unavailable
from service.uris import masked
from tests.gateway_fixtures import onnx_encoder
from tests.sagemaker_stub import StubSageMaker
from tests.server_process import ServerProcess

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cretPW-91f"
TOKEN = "tok-7d2a0c"
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "unused",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f'URL: "http://bob:{SECRET}@127.0.0.1:9/endpoints/ep/invocations"', 'URL: "http://***@127.0.0.1:9/endpoints/'),
        (f"https://bob:{SECRET}@x@milvus:19530/db", "https://***@milvus:19530/db"),  # a raw @ in the password
        (f"grpc://{TOKEN}@milvus:19530", "grpc://***@milvus:19530"),
        (f"http://h:1/a?x=1&token={TOKEN}&y=2", "http://h:1/a?x=1&token=***&y=2"),
        (f"http://h/?api_key={TOKEN}", "http://h/?api_key=***"),
        (f"http://h/p?X-Amz-Signature={TOKEN}&X-Amz-Credential={SECRET}", "X-Amz-Signature=***&X-Amz-Credential=***"),
    ],
)
def test_masked_hides_the_userinfo_and_credential_parameters(text: str, shown: str) -> None:
    out = masked(text)
    assert shown in out and SECRET not in out and TOKEN not in out


def test_masked_leaves_texts_without_credentials_as_they_are() -> None:
    for text in ("no collection 'a'", "http://milvus:19530/db?timeout=5", "top_k=20 is above 16384", "a@b.c"):
        assert masked(text) == text


def test_every_service_error_message_is_masked() -> None:
    error = Unavailable(f'could not connect to "http://bob:{SECRET}@h:9/x?token={TOKEN}"')
    assert SECRET not in error.message and TOKEN not in error.message and SECRET not in str(error)


def get(url: str, body: dict[str, object] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def o2v(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "service.cli", *argv]
    return subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_a_sagemaker_endpoint_url_with_a_password_is_shown_without_it(tmp_path: Path) -> None:
    with StubSageMaker(onnx_encoder()) as stub:
        endpoint_url = stub.url.replace("http://", f"http://o2v:{SECRET}@")
        env = {
            **AWS,
            "O2V_DATA_DIR": str(tmp_path),
            "O2V_SAGEMAKER_ENDPOINT": "ep",
            "O2V_SAGEMAKER_ENDPOINT_URL": endpoint_url,
            "O2V_SAGEMAKER_MAX_ATTEMPTS": "1",
            "O2V_SAGEMAKER_CONNECT_TIMEOUT_S": "1",
        }
        server = ServerProcess(env, args=("--backend", "sagemaker")).__enter__()
    try:  # the endpoint is gone: every call now fails to connect, and botocore quotes the URL
        shown = [get(f"{server.url}/readyz"), get(f"{server.url}/embed", {"texts": ["a cat"]})]
        shown.append(get(f"{server.url}/v1/embeddings", {"input": ["a cat"]}))
        assert [status for status, _ in shown] == [503, 503, 503], shown
        assert all("Could not connect to the endpoint URL" in text and "***@127.0.0.1" in text for _, text in shown)
        log = server.log.read_text(errors="replace")
    finally:
        server.__exit__()
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "a cat"}) + "\n")
    cli = o2v("index", "load", "c", str(rows), "--quiet", env={**env, "O2V_BACKEND": "sagemaker"})
    assert cli.returncode == 69 and "***@127.0.0.1" in cli.stderr, cli.stderr[-2000:]
    helps = [o2v(*command, "--help", env=env).stdout for command in (["serve"], ["index", "load"])]
    for text in [*(t for _, t in shown), log, cli.stdout, cli.stderr, *helps]:
        assert SECRET not in text


def test_a_milvus_uri_with_a_password_and_token_is_shown_without_them(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    env = {
        "O2V_DATA_DIR": str(tmp_path),
        "O2V_VECTOR_STORE": "milvus",
        "O2V_MILVUS_URI": f"http://o2v:{SECRET}@127.0.0.1:9/?token={TOKEN}",  # discard port: nothing listens
        "O2V_MILVUS_TIMEOUT_S": "0.5",
    }
    listed = o2v("index", "list", env=env)
    assert listed.returncode == 69 and "the vector store did not answer" in listed.stderr, listed.stderr[-2000:]
    serve = o2v("serve", "--host", "127.0.0.1", "--port", "9", "--help", env=env)
    for text in (listed.stdout, listed.stderr, serve.stdout):
        assert SECRET not in text and TOKEN not in text
