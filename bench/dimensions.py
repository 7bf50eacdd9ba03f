"""OpenAI `dimensions` on the bundled model: STS-B test Spearman and CLINC150 kNN in-scope accuracy when only the
first k values of each embedding are kept (then re-normalised), as the served principal-axes order gives them and,
for comparison, in the encoder's original axes (the rotation undone with its own matrix).

    nice -n 15 python -m bench.dimensions [--model-dir DIR] [--dims 64,128,256,384]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from bench.common import OnnxModel
from bench.tables import print_table
from service.evaluation import clinc, sts_spearman
from service.object2vec.rotation import ROTATION
from service.settings import DEFAULT_MODEL_DIR

Embed = Callable[[Sequence[str]], np.ndarray]


def first(embed: Embed, k: int, axes: np.ndarray | None = None) -> Embed:
    """`embed` (unit rows) in `axes` (default: as served), its first k values re-normalised; texts are embedded
    once per run (the evaluation asks for the same lists at every k)."""
    cache: dict[tuple[str, ...], np.ndarray] = {}

    def run(texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in cache:
            cache[key] = embed(texts) if axes is None else embed(texts) @ axes
        part = cache[key][:, :k]
        return part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--dims", default="64,128,256,384")
    args = parser.parse_args(argv)
    model = OnnxModel(args.model_dir)
    graph = onnx.load(str(model.encoder.model.path / "encoder.onnx")).graph
    rotation = next((numpy_helper.to_array(t) for t in graph.initializer if t.name == ROTATION), None)
    orders: dict[str, np.ndarray | None] = {"principal axes (served)": None}
    if rotation is not None:
        orders["original axes"] = np.ascontiguousarray(rotation.T)  # served @ Rᵀ = the unrotated output
    rows = []
    for order, axes in orders.items():
        whole = first(model, model.encoder.dim, axes)  # one embedding pass per order, shared by every k
        for k in (int(d) for d in args.dims.split(",")):
            embed = first(whole, k)
            rows.append({"axes": order, "dims": k, "sts_spearman": round(sts_spearman(embed), 4),
                         "clinc_acc": clinc(embed)["clinc_acc"]})  # fmt: skip
    print_table(rows, [("axes", "axes"), ("dims", "dims"), ("sts_spearman", "STS-B test"), ("clinc_acc", "CLINC kNN")])
    print(json.dumps({"model": model.name, "rotated": rotation is not None, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
