"""OnnxEncoder: the bundled model directory run by onnxruntime on CPU (the default, offline backend)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.encoders.base import Channel, Encoder, NoScorer, Rows
from service.model.model_dir import ModelDir
from service.settings import Settings
from service.text import TextTokenizer

INTER_OP_THREADS = 1
"""onnxruntime threads across independent graph nodes: the sessions run ORT_SEQUENTIAL (an encoder is one chain of
layers), so a second thread would only wait; intra-op threads (O2V_ONNX_INTRA_OP_THREADS) are what parallelise."""
MAX_BATCH_TOKENS = 16384
"""Padded tokens in one onnxruntime run: 64 texts of 256 tokens, one full micro-batch of typical sentences; a larger
chunk only pads more (rows are sorted by length first) and holds more activations for no gain in throughput."""


def _session(path: Path, intra_op_threads: int, inter_op_threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads spin by default; on a small box that spin takes the cores the event loop and the
    # tokenizer need between two batches.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxEncoder(Encoder):
    """encoder.onnx (and encoder1.onnx, scorer.onnx when present) in onnxruntime sessions.

    Rows are sorted by length and run in chunks of at most `max_batch_tokens` padded tokens, so one long text
    does not make every short one in its batch pay for its padding; results come back in the caller's order.
    """

    backend = "onnx"

    def __init__(
        self,
        model: ModelDir,
        intra_op_threads: int = 0,
        inter_op_threads: int = INTER_OP_THREADS,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
    ) -> None:
        super().__init__(model)
        self.max_batch_tokens = max_batch_tokens
        files = {channel: model.encoder_file(channel) for channel in ("in0", "in1")}
        sessions = {path: _session(path, intra_op_threads, inter_op_threads) for path in set(files.values())}
        self._encoders = {channel: sessions[path] for channel, path in files.items()}
        scorer = model.scorer_file
        self._scorer = _session(scorer, intra_op_threads, inter_op_threads) if scorer else None
        for channel in ("in0", "in1"):
            self._check_vocabulary(channel)

    def _check_vocabulary(self, channel: Channel) -> None:
        """The largest token id the service may send (hyperparameters.json's vocabulary, or the tokenizer's when
        larger) must have a row in the encoder's embedding table: checked now by embedding it, so that a model
        directory claiming more than its table holds stops the start instead of answering 500 (ONNX's Gather out
        of bounds) to the requests that use the last ids."""
        stated = self.model.vocab_size(channel)
        top = max(stated, self.tokenizer.vocab_size if channel == "in0" else 0) - 1
        try:
            self._encoders[channel].run(None, {"input_ids": np.array([[top]], dtype=np.int64)})
        except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument) as exc:
            field = "enc1_vocab_size" if channel == "in1" and self.model.hp.enc1_vocab_size else "enc0_vocab_size"
            source = f"hyperparameters.json's {field} ({stated})" if top == stated - 1 else "tokenizer.json"
            raise ValueError(
                f"{self.model.path}: {source} allows token id {top}, but the embedding table of "
                f"{self.model.encoder_file(channel).name} has fewer rows (onnxruntime: {str(exc)[:200]}). "
                "The vocabulary and the weights are from different models: re-export the model directory."
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> OnnxEncoder:
        return cls(ModelDir.load(settings.model_dir), settings.onnx_intra_op_threads)

    @property
    def has_scorer(self) -> bool:
        return self._scorer is not None

    def embed_ids(self, rows: Rows, channel: Channel = "in0") -> np.ndarray:
        limit = self.model.max_seq_len(channel)
        rows = [row[:limit] for row in rows]
        session = self._encoders[channel]
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for chunk in self._chunks(rows):
            ids = TextTokenizer.pad([rows[i] for i in chunk])
            out[chunk] = session.run(None, {"input_ids": ids})[0]
        return out

    def _chunks(self, rows: Sequence[Sequence[int]]) -> Iterator[list[int]]:
        """Row indices, shortest first, cut where the padded chunk would pass max_batch_tokens."""
        chunk: list[int] = []
        for i in sorted(range(len(rows)), key=lambda i: len(rows[i])):
            if chunk and (len(chunk) + 1) * len(rows[i]) > self.max_batch_tokens:
                yield chunk
                chunk = []
            chunk.append(i)
        if chunk:
            yield chunk

    def close(self) -> None:
        self._encoders.clear()
        self._scorer = None

    def score_ids(self, rows0: Rows, rows1: Rows) -> np.ndarray:
        if self._scorer is None:
            raise NoScorer(f"{self.model.path} has no scorer.onnx: send only in0 or only in1 for embeddings")
        emb0, emb1 = self.embed_ids(rows0, "in0"), self.embed_ids(rows1, "in1")
        return self._scorer.run(None, {"emb0": emb0, "emb1": emb1})[0]
