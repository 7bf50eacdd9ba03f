"""Every request limit and malformed input gets a 4xx in the shared error shape, naming the field; never a 500."""

from __future__ import annotations

import json

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from service import token_ids
from service.api import errors
from service.api.auth import require_api_key
from service.encoders.base import INVOKE_ENDPOINT_MAX_BYTES
from service.settings import Settings
from tests.gateway_fixtures import client

LIMITS = {
    "max_batch_size": 4, "max_text_chars": 50, "max_body_bytes": 4096,
    "max_token_ids": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def http():
    with client(**LIMITS) as test_client:
        yield test_client


def error_of(answer, status: int) -> dict:
    """The error in the house shape; one of /v1/* is checked for OpenAI's fields too and handed back in the house
    view (its `code` is the house type)."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    error = body["error"]
    if answer.request.url.path.startswith("/v1/"):
        assert error.pop("type") == ("invalid_request_error" if status < 500 else "server_error")
        assert error.pop("param") == error["field"]
        error["type"] = error.pop("code")
    assert set(body) == {"error"} and set(error) == {"type", "message", "field"}
    return error


CASES = [
    # route, JSON body, field at fault, words of the message
    ("/v1/embeddings", {}, "input", "required"),
    ("/v1/embeddings", {"input": []}, "input", "at least 1"),
    ("/v1/embeddings", {"input": ""}, "input[0]", "at least 1 character"),
    ("/v1/embeddings", {"input": ["ok", ""]}, "input[1]", "at least 1 character"),
    ("/v1/embeddings", {"input": ["x" * 51]}, "input[0]", "at most 50 characters"),
    ("/v1/embeddings", {"input": ["a"] * 5}, "input", "at most 4 items"),
    ("/v1/embeddings", {"input": 5}, "input", "valid list"),
    ("/v1/embeddings", {"input": [[15339, 100256]]}, "input[0]", "100256 is not defined"),  # cl100k_base's gap
    ("/v1/embeddings", {"input": ["ok", [15339, 10**6]]}, "input[1]", "not in cl100k_base"),
    ("/v1/embeddings", {"input": [[15339, "a"]]}, "input[0]", "integers only"),
    ("/v1/embeddings", {"input": [[15339] * 5, [1917] * 4]}, "input", "9 token ids in one request, the limit is 8"),
    ("/v1/embeddings", {"input": [[]]}, "input[0]", "at least 1 character"),
    ("/v1/embeddings", {"input": ["ok", 2]}, "input[1]", "valid string"),
    ("/v1/embeddings", {"input": [None]}, "input[0]", "valid string"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "hex"}, "encoding_format", "'float' or 'base64'"),
    ("/embed", {"texts": ["a"] * 5}, "texts", "at most 4 items"),
    ("/embed", {"texts": ["a"], "normalize": "maybe"}, "normalize", "valid boolean"),
    ("/embed", {"texts": ["a"], "normalise": True}, "normalise", "not permitted"),
    ("/embed", [], "body", "valid dictionary"),
    ("/embed", {"inputs": ["a"] * 5}, "inputs", "at most 4 items"),  # TEI's request
    ("/embed", {"inputs": "a", "texts": ["a"]}, "texts", "exactly one of `texts` and `inputs`"),
    ("/embed", {"inputs": "a", "truncation_direction": "Up"}, "truncation_direction", "'right', 'left'"),
    ("/embed", {"inputs": "a", "prompt_name": "query"}, "prompt_name", "None"),
    ("/", {"inputs": {"source_sentence": "a"}}, "inputs.sentences", "required"),
    (
        "/",
        {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"truncate": 1}},
        "parameters.truncate",
        "valid boolean",
    ),
    ("/", {"inputs": 5}, "inputs", "valid list"),
    (
        "/rerank",
        {"query": "a", "texts": ["b"], "max_tokens_per_doc": 100},
        "max_tokens_per_doc",
        "greater than or equal",
    ),
    ("/v1/rerank", {"query": "a"}, "texts", "exactly one of `texts` and `documents`"),
    ("/v2/rerank", {"query": "a", "documents": [{"title": "b"}]}, "documents[0]", "valid string"),
    (
        "/v2/embed",
        {"texts": ["a"], "embedding_types": ["float", "int8"]},
        "embedding_types[1]",
        "int8 embeddings are not",
    ),
    ("/v2/embed", {"texts": ["a"], "truncate": "MIDDLE"}, "truncate", "'NONE', 'START' or 'END'"),
    ("/v2/embed", {"texts": ["a"], "images": ["x"]}, "images", "not permitted"),
    ("/decode", {"ids": [[1], [30522]]}, "ids[1][0]", "less than or equal to 30521"),
    ("/decode", {"ids": []}, "ids", "at least 1"),
    ("/decode", {"ids": [1, True]}, "ids[0][1]", "JSON integer"),
    ("/similarity", {"pairs": []}, "pairs", "at least 1"),
    ("/similarity", {"pairs": [["a"]]}, "pairs[0][1]", "required"),
    ("/similarity", {"pairs": [["a", "b", "c"]]}, "pairs[0]", "at most 2"),
    ("/similarity", {"pairs": [["a", "x" * 51]]}, "pairs[0][1]", "at most 50"),
    ("/similarity", {"pairs": [["a", "b"]] * 5}, "pairs", "at most 4"),
    ("/similarity", {"pairs": [["a", "b"]], "stream": "no spaces"}, "stream", "pattern"),
    ("/invocations", {"instances": []}, "instances", "at least 1"),
    ("/invocations", {"instances": [{"label": 1}]}, "instances[0]", "in0, in1 or both"),
    ("/invocations", {"instances": [{"in0": []}]}, "instances[0].in0", "at least 1"),
    ("/invocations", {"instances": [{"in0": [30522]}]}, "instances[0].in0[0]", "less than 30522"),
    ("/invocations", {"instances": [{"in0": [-1]}]}, "instances[0].in0[0]", "greater than or equal to 0"),
    ("/invocations", {"instances": [{"in1": [1.5]}]}, "instances[0].in1[0]", "valid integer"),
    ("/invocations", {"instances": [{"in0": ["5"]}]}, "instances[0].in0[0]", "valid integer"),
    ("/invocations", {"instances": [{"in0": [True]}]}, "instances[0].in0[0]", "valid integer"),
    ("/invocations", {"instances": [{"in0": None}]}, "instances[0]", "in0, in1 or both"),
    ("/invocations", {"instances": "all"}, "instances", "valid list"),
    ("/invocations", [1, 2], "body", "valid dictionary"),
]


@pytest.mark.parametrize(("route", "body", "field", "words"), CASES)
def test_invalid_bodies_are_refused_naming_the_field(http, route, body, field, words):
    error = error_of(http.post(route, json=body), 400 if route.startswith("/v1/") else 422)  # OpenAI's 400
    assert error["type"] == "validation_error"
    assert error["field"] == field
    assert words in error["message"]


def test_the_schema_states_the_token_ids_cl100k_base_defines():
    """token_ids' constants (the request schema's bounds), which spare each start the encoding's import, are the
    encoding's own."""
    import bpe_openai

    encoding = bpe_openai.get_encoding(token_ids.ENCODING)
    undefined = []
    for token in range(encoding.max_token_value + 1):
        try:
            encoding.decode_single_token_bytes(token)
        except KeyError:
            undefined.append(token)
    assert (encoding.max_token_value, tuple(undefined)) == (token_ids.MAX_ID, token_ids.UNDEFINED_IDS)


@pytest.mark.parametrize(
    ("route", "raw"),
    [
        ("/v1/embeddings", b'{"input": [NaN]}'),
        ("/v1/embeddings", b'{"input": Infinity}'),
        ("/invocations", b'{"instances": [{"in0": [NaN]}]}'),
        ("/invocations", b'{"instances": [{"in0": [1e999]}]}'),
    ],
)
def test_non_finite_numbers_are_refused(http, route, raw):
    status = 400 if route.startswith("/v1/") else 422  # OpenAI's 400 for an invalid request
    error_of(http.post(route, content=raw, headers={"content-type": "application/json"}), status)


@pytest.mark.parametrize("route", ["/v1/embeddings", "/embed", "/similarity", "/invocations"])
def test_a_body_that_is_not_json_is_400(http, route):
    error = error_of(http.post(route, content=b'{"input": [', headers={"content-type": "application/json"}), 400)
    assert error["field"] == "body" and "JSON" in error["message"]


def test_an_empty_invocation_is_400(http):
    error_of(http.post("/invocations", content=b"", headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize(("route", "media"), [("/embed", "text/plain"), ("/invocations", "text/csv")])
def test_a_body_that_is_not_declared_json_is_415(http, route, media):
    error = error_of(http.post(route, content=b'{"texts": ["a"]}', headers={"content-type": media}), 415)
    assert error["type"] == "unsupported_media_type"


@pytest.mark.parametrize("seqlens", ["0", "5001", "a", "1,2,3"])
def test_bad_infer_max_seqlens_is_422(http, seqlens):
    headers = {"content-type": f"application/json; infer_max_seqlens={seqlens}"}
    error = error_of(http.post("/invocations", json={"instances": [{"in0": [5]}]}, headers=headers), 422)
    assert error["field"] == "Content-Type"


def test_a_body_over_the_limit_is_413_when_content_length_says_so(http):
    error = error_of(http.post("/embed", content=b"{" + b" " * 5000 + b"}"), 413)
    assert error == {"type": "payload_too_large", "message": error["message"], "field": "body"}
    assert "4096 bytes" in error["message"]


def test_a_chunked_body_over_the_limit_is_413_too(http):
    chunks = (b'{"texts": ["' + b"a" * 1000 + b'"]}' for _ in range(6))
    error = error_of(http.post("/embed", content=chunks, headers={"content-type": "application/json"}), 413)
    assert "4096 bytes" in error["message"]


def test_invocations_take_bodies_up_to_the_sagemaker_limit(http):
    """InvokeEndpoint's own 6 MiB (INVOKE_ENDPOINT_MAX_BYTES), not O2V_MAX_BODY_BYTES (4096 here)."""
    instances = [{"in0": [1000 + i % 50]} for i in range(400)]
    assert 4096 < len(json.dumps({"instances": instances})) < INVOKE_ENDPOINT_MAX_BYTES
    assert http.post("/invocations", json={"instances": instances}).status_code == 200
    flood = json.dumps({"instances": [{"in0": [1000]}] * 400_000}).encode()
    assert len(flood) > INVOKE_ENDPOINT_MAX_BYTES
    error = error_of(http.post("/invocations", content=flood, headers={"content-type": "application/json"}), 413)
    assert f"{INVOKE_ENDPOINT_MAX_BYTES} bytes" in error["message"]


def test_unknown_routes_and_methods(http):
    assert error_of(http.get("/nope"), 404)["type"] == "not_found"
    assert error_of(http.get("/embed"), 405)["type"] == "method_not_allowed"


def test_read_routes_are_open_even_with_an_api_key():
    with client(api_key="s3cret-gateway-key-0x1") as http:
        assert http.post("/embed", json={"texts": ["a"]}).status_code == 200


def guarded_app(api_key: str | None) -> TestClient:
    app = FastAPI()
    app.state.settings = Settings(api_key=api_key)
    errors.install(app)

    @app.post("/write", dependencies=[Depends(require_api_key)])
    async def write() -> dict[str, bool]:
        return {"written": True}

    return TestClient(app)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0", "s3cret-gateway-key-0x1"])
def test_write_routes_need_the_api_key(header):
    headers = {"Authorization": header} if header else {}
    answer = guarded_app("s3cret-gateway-key-0x1").post("/write", headers=headers)
    error = error_of(answer, 401)
    assert error["field"] == "Authorization" and answer.headers["www-authenticate"] == "Bearer"


def test_the_right_key_or_no_key_set_lets_writes_through():
    assert (
        guarded_app("s3cret-gateway-key-0x1")
        .post("/write", headers={"Authorization": "Bearer s3cret-gateway-key-0x1"})
        .status_code
        == 200
    )
    assert guarded_app(None).post("/write").status_code == 200
