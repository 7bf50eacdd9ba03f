"""Principal-axes rotation of a model directory's embeddings, so that OpenAI's `dimensions` (keep the first k, then
re-normalise) keeps the best k-dimensional summary: the encoder's output is multiplied by a fixed orthogonal matrix
R whose columns are the principal axes of embeddings of sample texts, largest variance first.

R is orthogonal, so every norm, dot product and cosine at full size is unchanged (to float rounding); the scorer
reads the rotated embeddings through R's transpose, so its scores are unchanged too. The MatMul is appended to the
ONNX graphs with the `onnx` package (no retraining, no torch), and the model card records it (`encoder.rotation`),
which is also what keeps a model from being rotated twice.

    python -m service.object2vec.rotation service/model/bundled/object2vec-sts-384  # bundled: STS-B, CLINC150 train
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from service.datasets import file_sha256
from service.text import TextTokenizer
from service.vectors import cosine_matrix

ROTATION = "pca_rotation"
CHECK_DIMS = (32, 64, 128, 256)


def principal_axes(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal R [d, d] (columns: the unit-length rows' principal axes, largest second moment first) and each
    axis' share of it. Uncentred, as cosines are taken from the origin: on the bundled model it kept more than the
    centred axes at 32-256 dims (STS-B dev Spearman 0.810 vs 0.806 at 64, CLINC150 kNN 0.890 vs 0.888)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    values, vectors = np.linalg.eigh(unit.T.astype(np.float64) @ unit / len(unit))
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    vectors *= np.where(vectors[np.abs(vectors).argmax(axis=0), range(len(order))] < 0, -1.0, 1.0)  # fixed signs
    return vectors.astype(np.float32), values / max(values.sum(), 1e-12)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _embed(model: onnx.ModelProto, rows: Sequence[Sequence[int]], batch: int = 256) -> np.ndarray:
    session = _session(model)
    parts = [
        session.run(None, {"input_ids": TextTokenizer.pad(rows[i : i + batch])})[0] for i in range(0, len(rows), batch)
    ]
    return np.concatenate(parts)


def _fresh(graph: onnx.GraphProto, base: str) -> str:
    """`base`, or base_2, base_3, ... when the graph already names a tensor so (a graph rotated before)."""
    taken = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    taken |= {name for node in graph.node for name in node.output} | {node.name for node in graph.node}
    names = (base if i == 1 else f"{base}_{i}" for i in range(1, len(taken) + 2))
    return next(name for name in names if name not in taken)


def rotate_output(model: onnx.ModelProto, rotation: np.ndarray) -> onnx.ModelProto:
    """A copy of encoder.onnx whose `embedding` output is MatMul(embedding, R)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    output = graph.output[0].name
    inner, matrix, node_name = (
        _fresh(graph, f"{output}_unrotated"),
        _fresh(graph, ROTATION),
        _fresh(graph, "pca_rotate"),
    )
    for node in graph.node:
        node.output[:] = [inner if name == output else name for name in node.output]
        node.input[:] = [inner if name == output else name for name in node.input]
    graph.initializer.append(numpy_helper.from_array(rotation, matrix))
    graph.node.append(helper.make_node("MatMul", [inner, matrix], [output], name=node_name))
    onnx.checker.check_model(out)
    return out


def unrotate_inputs(model: onnx.ModelProto, rotation: np.ndarray) -> onnx.ModelProto:
    """A copy of scorer.onnx that reads each input through MatMul(input, Rᵀ): rotated embeddings score as before."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inner = {i.name: _fresh(graph, f"{i.name}_unrotated") for i in graph.input}
    matrix = _fresh(graph, f"{ROTATION}_t")
    first = [
        helper.make_node("MatMul", [name, matrix], [inner[name]], name=_fresh(graph, f"unrotate_{name}"))
        for name in inner
    ]
    for node in graph.node:
        node.input[:] = [inner.get(name, name) for name in node.input]
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(rotation.T), matrix))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*first, *nodes])
    onnx.checker.check_model(out)
    return out


def rotate_model_dir(model_dir: str | Path, rows: Sequence[Sequence[int]], source: str) -> dict[str, Any]:
    """Rotate encoder.onnx (and encoder1.onnx) into the principal axes of `rows`' embeddings and feed scorer.onnx
    through the inverse; only once cosines and scores are checked unchanged are the files and the card written."""
    model_dir = Path(model_dir)
    card_file = model_dir / "model_card.json"
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    if card.get("encoder", {}).get("rotation"):
        raise ValueError(f"{model_dir} is rotated already ({card['encoder']['rotation']['kind']})")
    paths = [p for p in (model_dir / "encoder.onnx", model_dir / "encoder1.onnx") if p.is_file()]
    encoders = {p: onnx.load(str(p)) for p in paths}
    rotation, share = principal_axes(_embed(encoders[paths[0]], rows))
    rotated = {p: rotate_output(m, rotation) for p, m in encoders.items()}
    check = list(rows[:512])
    worst = 0.0
    pairs = {}
    for p in paths:
        before, after = _embed(encoders[p], check), _embed(rotated[p], check)
        worst = max(worst, float(np.abs(cosine_matrix(after) - cosine_matrix(before)).max()))
        pairs[p] = (before, after)
    if worst > 1e-5:
        raise RuntimeError(f"the rotation would change a cosine by {worst:.2e}; nothing was written")
    record: dict[str, Any] = {
        "kind": "pca",
        "why": "OpenAI `dimensions`: the first k outputs are the best k-dimensional summary (cosines unchanged)",
        "source": source,
        "samples": len(rows),
        "variance_kept": {str(k): round(float(share[:k].sum()), 4) for k in CHECK_DIMS if k < len(share)},
        "max_cosine_change": float(f"{worst:.2e}"),
    }
    scorer_path = model_dir / "scorer.onnx"
    if scorer_path.is_file():
        scorer = onnx.load(str(scorer_path))
        new_scorer = unrotate_inputs(scorer, rotation)
        (b0, a0), (b1, a1) = pairs[paths[0]], pairs[paths[-1]]
        change = float(np.abs(_score(new_scorer, a0, a1) - _score(scorer, b0, b1)).max())
        if change > 1e-4:
            raise RuntimeError(f"the rotation would change a pair score by {change:.2e}; nothing was written")
        record["max_score_change"] = float(f"{change:.2e}")
        onnx.save(new_scorer, str(scorer_path))
    for p, model in rotated.items():
        onnx.save(model, str(p))
    card.setdefault("encoder", {})["rotation"] = record
    if "files" in card:
        card["files"] = {name: file_sha256(model_dir / name) for name in card["files"] if (model_dir / name).is_file()}
    card_file.write_text(json.dumps(card, indent=1))
    return record


def _score(model: onnx.ModelProto, emb0: np.ndarray, emb1: np.ndarray) -> np.ndarray:
    """Scores of mismatched pairs too (emb1 reversed), not only of each text with itself."""
    return _session(model).run(None, {"emb0": emb0, "emb1": emb1[::-1].copy()})[0]


def dataset_rows(tokenizer: TextTokenizer, limit: int = 20_000, seed: int = 0) -> tuple[list[list[int]], str]:
    """Training texts of the bundled model (STS-B train sentences, CLINC150 train utterances), never a test split."""
    from service.datasets import read_clinc, read_sts

    texts = sorted({t for p in read_sts("train") for t in (p.a, p.b)} | {t for t, _ in read_clinc("train")})
    random.Random(seed).shuffle(texts)
    return tokenizer.encode(texts[:limit]), f"{min(limit, len(texts))} texts of STS-B train and CLINC150 train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args(argv)
    from service.model.model_dir import ModelDir

    rows, source = dataset_rows(ModelDir.load(args.model_dir).tokenizer(), args.samples)
    print(json.dumps(rotate_model_dir(args.model_dir, rows, source), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
