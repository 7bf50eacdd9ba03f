"""Running the app: `serve` (uvicorn in this process, for `o2v serve`) and `ServerProcess` (a child `o2v serve`
on a free loopback port, for the end-to-end tests and the HTTP benchmark)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from service.api.connections import uvicorn_http
from service.settings import Settings

MODEL_FILES = ("encoder.onnx", "hyperparameters.json", "tokenizer.json")  # what `o2v export` writes and serving reads
logger = logging.getLogger("o2v.serve")


def sagemaker_model(path: Path) -> Path | None:
    """The model directory SageMaker unpacked to `path`, or None when it is empty or absent (the baked-in model
    serves, logged). Anything else there stops the start: a SageMaker built-in Object2Vec artifact (model_algo-1, a
    model.tar.gz) cannot be served here, and answering with the baked-in model instead would give 200s with
    embeddings of another vocabulary."""
    found = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if not found:
        logger.warning("%s holds no model: serving the baked-in model", path)
        return None
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        listed = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise ValueError(
            f"{path} holds {listed}, not an object2vec-service model directory (missing {', '.join(missing)}). "
            f"Expected what `o2v export` writes ({', '.join(MODEL_FILES)}, scorer.onnx, model_card.json), packed as "
            "the model's model.tar.gz; a model trained by SageMaker's built-in Object2Vec cannot be served by this "
            "image. Create the SageMaker model without model data to serve the baked-in model."
        )
    return path


def serve(overrides: Mapping[str, Any], sagemaker: bool = False) -> int:
    """Serve with the environment's settings plus `overrides`; they travel as O2V_* variables so that every
    uvicorn worker process builds the same Settings. `sagemaker`: what a SageMaker container needs unless
    overridden: 0.0.0.0:8080, InvokeEndpoint's body limit, the model SageMaker unpacks (sagemaker_model)."""
    if sagemaker:
        settings = Settings()
        defaults: dict[str, Any] = {
            "host": "0.0.0.0",
            "port": 8080,
            "max_body_bytes": settings.sagemaker.max_body_bytes,
        }
        if "model_dir" not in overrides:
            unpacked = sagemaker_model(settings.sagemaker.model_dir)
            if unpacked is not None:
                defaults["model_dir"] = unpacked
        overrides = {**defaults, **overrides}
    for name, value in overrides.items():
        os.environ[f"O2V_{name.upper()}"] = str(value)
    settings = Settings()
    refuse_workers_with_drift(settings)
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        access_log=settings.server.access_log,
        http=uvicorn_http(settings),
    )
    return 0


def limited_serve(port: int, nofile: int) -> list[str]:
    """A command running `o2v serve` on 127.0.0.1:`port` under `ulimit -n nofile` (ServerProcess' `command`), for
    the tests and benchmarks that play a client against the fd limit."""
    script = (
        "import resource, sys, runpy\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))\n"
        f"sys.argv = ['o2v', 'serve', '--host', '127.0.0.1', '--port', '{port}']\n"
        "runpy.run_module('service.cli', run_name='__main__')\n"
    )
    return [sys.executable, "-c", script]


def refuse_workers_with_drift(settings: Settings) -> None:
    """ValueError for O2V_WORKERS > 1 with the drift monitor on. Each worker process holds its own monitor: a
    baseline uploaded to one worker is missing from the others' answers, and is lost when another worker, which never
    saw it, writes the state file last; a clear refusal beats acknowledged writes that vanish."""
    if settings.server.workers > 1 and settings.drift.enabled:
        raise ValueError(
            f"O2V_WORKERS={settings.server.workers} with the drift monitor on: each worker process would keep drift "
            "state of its own, and baselines uploaded to one would be lost. Run one worker per process (scale with "
            "more replicas), or turn the drift monitor off with O2V_DRIFT_ENABLED=false"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`with ServerProcess(env) as server:` runs `o2v serve` on 127.0.0.1 until /readyz answers 200.

    `command` runs another launcher instead (the container's `serve` script), which must listen on `port`."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        timeout_s: float = 60.0,
        command: Sequence[str] | None = None,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        serve = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.command = [*(command or serve), *args]
        self.timeout_s = timeout_s
        self.log = Path(tempfile.mkstemp(prefix="o2v-serve-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        log = self.log.read_text(errors="replace")[-4000:]
        self.__exit__()
        raise RuntimeError(f"o2v serve did not become ready in {self.timeout_s:.0f} s; its log:\n{log}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)
