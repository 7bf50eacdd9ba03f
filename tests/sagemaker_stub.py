"""A loopback stand-in for SageMaker's InvokeEndpoint (POST /endpoints/{name}/invocations), answering from the ONNX
model in Object2Vec's formats, with a script of failures for the next requests (throttling, 5xx, ModelError,
slow or malformed answers).

Errors are answered as AWS answers them, so botocore parses and retries them as it would in production: the HTTP
status and members of botocore's sagemaker-runtime model (data/sagemaker-runtime/2017-05-13/service-2.json: e.g.
ModelError 424 with OriginalStatusCode, OriginalMessage, LogStreamArn), the code in `x-amzn-ErrorType` with the
namespace suffix AWS appends, and ThrottlingException, a common error that model does not list, as HTTP 400."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from service.encoders.base import Encoder

ENDPOINT_LOGS = "/aws/sagemaker/Endpoints/o2v-test"
MODEL_ERROR_MESSAGE = (
    'Received server error (500) from primary with message "model crashed". See https://us-east-1.console.aws.amazon'
    f".com/cloudwatch/home?region=us-east-1#logEventViewer:group={ENDPOINT_LOGS} in account 123456789012 for more "
    "information."
)
# failure name → (HTTP status, error code, JSON body)
ERRORS: dict[str, tuple[int, str, dict[str, Any]]] = {
    "throttle": (400, "ThrottlingException", {"message": "Rate exceeded"}),
    "not_ready": (429, "ModelNotReadyException", {"Message": "Model o2v is still loading. Try again later."}),
    "internal": (500, "InternalFailure", {"Message": "An internal failure occurred."}),
    "unavailable": (503, "ServiceUnavailable", {"Message": "The service is unavailable."}),
    "dependency": (530, "InternalDependencyException", {"Message": "An internal dependency failed."}),
    "validation": (400, "ValidationError", {"Message": "Endpoint o2v-test of account 123456789012 not found."}),
    "model_error": (
        424,
        "ModelError",
        {
            "Message": MODEL_ERROR_MESSAGE,
            "OriginalStatusCode": 500,
            "OriginalMessage": "model crashed",
            "LogStreamArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{ENDPOINT_LOGS}",
        },
    ),
}
NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.sagemaker.runtime/"


@dataclass
class Seen:
    path: str
    content_type: str
    accept: str
    body: bytes

    @property
    def instances(self) -> list[dict[str, Any]]:
        return json.loads(self.body)["instances"]

    @property
    def inputs(self) -> set[tuple[str, ...]]:
        """The input types of the request: {("in0",)}, {("in1",)} or {("in0", "in1")}; AWS takes one per request."""
        return {tuple(sorted(instance)) for instance in self.instances}


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
                    status, code, payload = ERRORS[kind]
                    self._send(status, json.dumps(payload).encode(), {"x-amzn-ErrorType": code + NAMESPACE})
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
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
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
        seqlens = str(message.get_param("infer_max_seqlens") or "5000,5000").split(",")
        if all("in0" in x and "in1" in x for x in instances):
            key = "scores"
            rows = self.encoder.score_ids([x["in0"] for x in instances], [x["in1"] for x in instances])
        else:
            key = "embeddings"
            channel = "in1" if "in1" in instances[0] else "in0"
            seq_len = int(seqlens[-1 if channel == "in1" else 0])
            rows = self.encoder.embed_ids([x[channel][:seq_len] for x in instances], channel)
        if kind == "wrong_dim":
            rows = rows[:, :3]
        if kind == "wrong_count":
            rows = rows[:-1]
        if kind == "nan":
            rows = np.full_like(rows, np.nan)
        return {"predictions": [{key: row.tolist()} for row in rows]}
