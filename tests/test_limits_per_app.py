"""Request-schema limits are the serving app's: two apps in one process with different settings each validate and
state their own, and a schema validated outside any app's request says so instead of guessing limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.api.limits import Limits, applied
from service.api.schemas.embeddings import EmbedRequest
from service.settings import Settings
from tests.gateway_fixtures import client, onnx_encoder


def test_two_apps_in_one_process_keep_their_own_limits() -> None:
    with client(max_batch_size=2, max_text_chars=10) as small, client(max_batch_size=5) as large:
        for _ in range(2):  # interleaved: neither app's limits leak into the other's requests
            answer = small.post("/embed", json={"texts": ["a", "b", "c"]})
            assert answer.status_code == 422
            assert "at most 2 items" in answer.json()["error"]["message"]
            assert small.post("/embed", json={"texts": ["x" * 11]}).json()["error"]["field"] == "texts[0]"
            assert large.post("/embed", json={"texts": ["a", "b", "c", "x" * 11]}).status_code == 200
        texts = {
            name: http.get("/openapi.json").json()["components"]["schemas"]["EmbedRequest"]["properties"]["texts"]
            for name, http in (("small", small), ("large", large))
        }
    assert (texts["small"]["maxItems"], texts["small"]["items"]["maxLength"]) == (2, 10)
    assert texts["large"]["maxItems"] == 5 and "x-o2v-limits" not in str(texts)


def test_validation_outside_a_request_needs_the_limits_given() -> None:
    with pytest.raises(RuntimeError, match="outside a request"):
        EmbedRequest.model_validate({"texts": ["a"]})
    limits = Limits.of(Settings(max_batch_size=1), onnx_encoder())
    with applied(limits):
        assert EmbedRequest.model_validate({"texts": ["a"]}).texts == ["a"]
        with pytest.raises(ValidationError, match="at most 1 item"):
            EmbedRequest.model_validate({"texts": ["a", "b"]})
