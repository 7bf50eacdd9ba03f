"""The client libraries of docs/clients.md, each run as the page shows it (the snippets are read from the page; only
the port changes) against a real `o2v serve` over loopback HTTP, with no network beyond it: tiktoken reads
cl100k_base from a local cache built from bpe-openai's copy, litellm its bundled price list."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.gateway_fixtures import onnx_encoder
from tests.server_process import ServerProcess

PAGE = Path(__file__).resolve().parents[1] / "docs" / "clients.md"
DOCS_URL = "http://localhost:8000"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
ALIAS = "rerank-english-v3.0"
"""A Cohere model's name, configured as an alias of the served model (O2V_MODEL_ALIASES)."""
SNIPPET = re.compile(r"<!-- snippet: (\S+) -->\n```python\n(.*?)```", re.S)


def snippets() -> dict[str, str]:
    return dict(SNIPPET.findall(PAGE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "O2V_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "O2V_ONNX_INTRA_OP_THREADS": "1",
        "O2V_MODEL_ALIASES": f'["{ALIAS}"]',
    }
    with ServerProcess(env) as running:
        yield running


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What a machine without internet needs: tiktoken's cl100k_base file in its cache (named by the SHA-1 of its
    URL, checked by tiktoken against the SHA-256 it expects), litellm's local price list, placeholder AWS keys."""
    cache = tmp_path / "tiktoken"
    cache.mkdir()
    packed = importlib.resources.files("bpe_openai") / "data" / "cl100k_base.tiktoken.gz"
    (cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(gzip.decompress(packed.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    nowhere = str(tmp_path / "none")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "unused", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def run(name: str, server: ServerProcess) -> dict[str, Any]:
    """The page's snippet `name`, pointed at `server`, run; its variables."""
    code = snippets()[name]
    assert DOCS_URL in code
    namespace: dict[str, Any] = {}
    exec(compile(code.replace(DOCS_URL, server.url), f"docs/clients.md:{name}", "exec"), namespace)
    return namespace


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def embedded(texts: list[str]) -> np.ndarray:
    """What the model itself gives the texts, unit length: what every client must get."""
    return unit(onnx_encoder().embed_texts(texts))


def cosines(a: Any, b: np.ndarray) -> np.ndarray:
    a = unit(np.asarray(a, dtype=np.float64))
    return np.sum(a * unit(b.astype(np.float64)), axis=-1)


def test_every_client_section_has_a_snippet_and_the_test_runs_each() -> None:
    assert set(snippets()) == {"openai", "langchain", "huggingface_hub", "tei", "cohere", "litellm", "boto3"}


def test_openai(server: ServerProcess) -> None:
    openai = pytest.importorskip("openai")
    got = run("openai", server)
    assert got["model"].id == onnx_encoder().name and got["model"].object == "model"
    texts = ["A man is playing a guitar.", "A woman slices an onion."]
    np.testing.assert_allclose(np.array(got["vectors"]), embedded(texts), atol=1e-5)
    np.testing.assert_allclose(got["short"], unit(onnx_encoder().embed_texts(texts[:1])[:, :64])[0], atol=1e-5)
    client = got["client"]
    with pytest.raises(openai.BadRequestError) as invalid:  # OpenAI's status and class for an invalid request
        client.embeddings.create(model=got["model"].id, input=[])
    assert invalid.value.status_code == 400 and invalid.value.param == "input" and invalid.value.code
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("text-embedding-3-large")
    assert missing.value.code == "model_not_found"


def test_langchain_defaults_send_token_arrays_and_get_the_plain_texts_vectors(server: ServerProcess) -> None:
    pytest.importorskip("langchain_openai")
    tiktoken = pytest.importorskip("tiktoken")
    got = run("langchain", server)
    assert got["embeddings"].check_embedding_ctx_length and got["embeddings"].tiktoken_enabled  # token arrays sent
    texts = ["A man is playing a guitar.", "A woman slices an onion."]
    assert cosines(got["vectors"], embedded(texts)).min() >= 0.999
    assert cosines(got["query"], embedded(["Who plays the guitar?"])[0]) >= 0.999
    ids = tiktoken.get_encoding("cl100k_base").encode(texts[0])  # what LangChain sent, sent by hand
    answer = httpx.post(f"{server.url}/v1/embeddings", json={"input": [ids]}, timeout=30).json()
    np.testing.assert_allclose(answer["data"][0]["embedding"], embedded(texts[:1])[0], atol=1e-5)


def test_huggingface_hub_feature_extraction_and_sentence_similarity(server: ServerProcess) -> None:
    pytest.importorskip("huggingface_hub")
    got = run("huggingface_hub", server)
    vector = np.asarray(got["vector"]).reshape(-1)
    np.testing.assert_allclose(vector, embedded(["A man is playing a guitar."])[0], atol=1e-5)
    others = embedded(["A man plays the guitar.", "A woman slices an onion."])
    expected = others @ embedded(["A man is playing a guitar."])[0]
    np.testing.assert_allclose(got["scores"], expected, atol=1e-5)
    assert got["scores"][0] > got["scores"][1]


def test_tei_shapes(server: ServerProcess) -> None:
    got = run("tei", server)
    np.testing.assert_allclose(got["embeddings"], embedded(["What is Deep Learning?"]), atol=1e-5)
    ranks = got["ranks"]
    assert isinstance(ranks, list) and [r["index"] for r in ranks] == [0, 1]
    assert all(r["relevance_score"] == r["score"] for r in ranks) and ranks[0]["score"] > ranks[1]["score"]
    assert ranks[0]["text"] == "Deep Learning is a branch of machine learning."
    assert [t["text"] for t in got["tokens"][0]] == ["What", "is", "Deep", "Learning", "?"]
    assert got["text"] == ["what is deep learning?"]  # the vocabulary is lower-cased
    info = got["info"]
    assert info["model_id"] == onnx_encoder().name and info["max_input_length"] == 128
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}


def test_cohere_v2_and_v1_rerank(server: ServerProcess) -> None:
    cohere = pytest.importorskip("cohere")
    got = run("cohere", server)
    results = got["response"].results
    assert len(results) == 2 and got["best"].index == 1
    assert all(isinstance(r.relevance_score, float) for r in results)
    assert results[0].relevance_score > results[1].relevance_score
    documents = ["A woman slices an onion.", "A man is playing a guitar.", "Two dogs run in the snow."]
    v1 = cohere.Client(base_url=server.url, api_key="unused")
    old = v1.rerank(query="Who plays the guitar?", documents=documents, top_n=2, return_documents=True)
    assert [(r.index, r.relevance_score) for r in old.results] == [(r.index, r.relevance_score) for r in results]
    assert old.results[0].document.text == documents[1]
    served = onnx_encoder().name
    with pytest.raises(cohere.core.ApiError) as refused:
        got["co"].rerank(model=served, query="q", documents=documents, max_tokens_per_doc=16)
    assert refused.value.status_code == 422 and "max_tokens_per_doc" in str(refused.value.body)  # named
    aliased = got["co"].rerank(model=ALIAS, query="Who plays the guitar?", documents=documents, top_n=2)
    assert [(r.index, r.relevance_score) for r in aliased.results] == [(r.index, r.relevance_score) for r in results]
    for client, kwargs in ((got["co"], {}), (v1, {"top_n": 2})):  # Cohere's own model names are not served
        with pytest.raises(cohere.core.ApiError) as unknown:
            client.rerank(model="rerank-v3.5", query="q", documents=documents, **kwargs)
        assert unknown.value.status_code == 404 and "model_not_found" in str(unknown.value.body)
    np.testing.assert_allclose(got["vector"], embedded(["A man is playing a guitar."])[0], atol=1e-5)
    with pytest.raises(cohere.core.ApiError) as quantised:  # not made up: Cohere does not publish its scales
        got["co"].embed(model=served, texts=["a"], input_type="search_query", embedding_types=["int8"])
    assert quantised.value.status_code == 422 and "int8" in str(quantised.value.body)


def test_litellm_rerank_and_embedding_with_dimensions(server: ServerProcess) -> None:
    pytest.importorskip("litellm")
    got = run("litellm", server)
    results = got["ranked"].results
    assert [r["index"] for r in results] == [1, 0] and all(isinstance(r["relevance_score"], float) for r in results)
    documents = ["A woman slices an onion.", "A man is playing a guitar."]
    served = onnx_encoder().name
    providers = (("cohere", server.url), ("jina_ai", server.url), ("hosted_vllm", f"{server.url}/v1"))
    for (provider, base), name in zip(providers, (served, ALIAS, served), strict=True):
        model = f"{provider}/{name}"
        other = got["litellm"].rerank(
            model=model, api_base=base, api_key="unused", query="Who plays?", documents=documents
        )
        assert [r["index"] for r in other.results] == [1, 0], model  # Cohere's paths: /v1/rerank
        assert other.results[0]["document"]["text"] == documents[1], model
    with pytest.raises(Exception, match="model_not_found"):  # litellm wraps the 404 in its own exception types
        got["litellm"].rerank(model="infinity/rerank-v3.5", api_base=server.url, query="q", documents=documents)
    vector = got["embedded"].data[0]["embedding"]
    assert len(vector) == 64
    expected = unit(onnx_encoder().embed_texts(["A man is playing a guitar."])[:, :64])[0]
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_boto3_invoke_endpoint_through_endpoint_url(server: ServerProcess) -> None:
    got = run("boto3", server)
    ids = onnx_encoder().tokenizer.encode(["A man is playing a guitar."])[0]
    assert ids == [1037, 2158, 2003, 2652, 1037, 2858, 1012]  # the snippet's ids are the text's
    np.testing.assert_allclose(got["predictions"][0]["embeddings"], onnx_encoder().embed_ids([ids])[0], atol=1e-4)
    assert got["response"]["ContentType"] == "application/json"
