"""A loopback stand-in for SageMaker's InvokeEndpoint (POST /endpoints/{name}/invocations), answering from the ONNX
model in Object2Vec's formats, with a script of failures for the next requests (throttling, 5xx, ModelError,
slow or malformed answers)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from service.encoders.base import Encoder

# failure name → (HTTP status, error code); botocore reads the code from x-amzn-ErrorType like AWS sends it
ERRORS = {
    "throttle": (429, "ThrottlingException"),
    "not_ready": (429, "ModelNotReadyException"),
    "internal": (500, "InternalFailure"),
    "unavailable": (503, "ServiceUnavailable"),
    "model_error": (424, "ModelError"),
    "validation": (400, "ValidationError"),
}


@dataclass
class Seen:
    path: str
    content_type: str
    accept: str
    body: bytes

    @property
    def instances(self) -> list[dict[str, Any]]:
        return json.loads(self.body)["instances"]


@dataclass
class StubSageMaker:
    """Start with `with StubSageMaker(encoder) as stub:`; `stub.url` is the endpoint_url for boto3."""

    encoder: Encoder
    delay_s: float = 1.0  # how long a "slow" answer takes
    script: deque[str] = field(default_factory=deque)  # what the next requests get; "ok" when empty
    always: str | None = None  # what every request gets once the script is used up
    seen: list[Seen] = field(default_factory=list)

    def __enter__(self) -> StubSageMaker:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                stub.seen.append(Seen(self.path, self.headers["content-type"], self.headers["accept"], body))
                kind = stub.script.popleft() if stub.script else (stub.always or "ok")
                if not self.path.endswith("/invocations") or not self.path.startswith("/endpoints/"):
                    self._send(404, b"{}", {"x-amzn-ErrorType": "UnknownOperationException"})
                elif kind in ERRORS:
                    status, code = ERRORS[kind]
                    payload = {"message": f"stub {kind}", "OriginalStatusCode": 500, "OriginalMessage": "boom"}
                    self._send(status, json.dumps(payload).encode(), {"x-amzn-ErrorType": code})
                elif kind == "malformed":
                    self._send(200, b"{not json")
                else:
                    if kind == "slow":
                        time.sleep(stub.delay_s)
                    answer = stub.answer(json.loads(body), self.headers["content-type"], kind)
                    self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, request: dict[str, Any], content_type: str, kind: str) -> dict[str, Any]:
        """Object2Vec's answer: embeddings for single-input instances, scores for pairs (one mode per request)."""
        instances = request["instances"]
        message = Message()
        message["content-type"] = content_type
        seq_len = int(message.get_param("infer_max_seqlens") or 5000)
        if all("in0" in x and "in1" in x for x in instances):
            key = "scores"
            rows = self.encoder.score_ids([x["in0"] for x in instances], [x["in1"] for x in instances])
        else:
            key = "embeddings"
            channel = "in1" if "in1" in instances[0] else "in0"
            rows = self.encoder.embed_ids([x[channel][:seq_len] for x in instances], channel)
        if kind == "wrong_dim":
            rows = rows[:, :3]
        if kind == "wrong_count":
            rows = rows[:-1]
        if kind == "nan":
            rows = np.full_like(rows, np.nan)
        return {"predictions": [{key: row.tolist()} for row in rows]}
