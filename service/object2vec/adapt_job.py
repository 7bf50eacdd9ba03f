"""The adaptation child: `python -m service.object2vec.adapt_job JOB_DIR OUT_DIR` (see service/model/adaptation.py).

Reads JOB_DIR/request.json, holds out a stratified split when the request has none, fine-tunes (one progress line
per epoch; a `cancel` file stops it at the next epoch), exports OUT_DIR atomically and writes result.json: the
adapted model against its parent on the held-out split, and STS-B dev Spearman of both as a generic guard.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from service.evaluation import pair_spearman
from service.model.adaptation import CANCEL, ERROR, PROGRESS, REQUEST, RESULT, AdaptRequest, write_json_atomic
from service.model.labelled import LabelError, check_labelled, pair_rows, rows_pairs, stratified_split
from service.model.model_dir import ModelDir
from service.object2vec.adapt import (
    AdaptConfig,
    AdaptError,
    Cancelled,
    LabelTask,
    PairTask,
    embed_rows,
    export_adapted,
    fine_tune,
    lineage_of,
    recover,
)


def sts_guard(path: Path | None, parent: Any, adapted: Any, tokenizer: Any) -> dict[str, Any]:
    """STS-B dev Spearman of the cosines, parent against adapted: what a team trades for its intents."""
    if path is None or not path.is_file():
        return {"skipped": "no STS-B dev file (O2V_SHARED_DATA/stsbenchmark/sts-dev.csv): the guard is not measured"}
    from service.datasets import read_sts_file

    pairs = [(p.a, p.b, p.score) for p in read_sts_file(path)]

    def embedder(model: Any) -> Any:
        return lambda texts: embed_rows(model, tokenizer.encode(texts))

    before, after = pair_spearman(embedder(parent), pairs), pair_spearman(embedder(adapted), pairs)
    return {"parent": round(before, 4), "adapted": round(after, 4), "change": round(after - before, 4)}


def run(job_dir: Path, out_dir: Path) -> dict[str, Any]:
    request = AdaptRequest.from_json(json.loads((job_dir / REQUEST).read_text()))
    parent = ModelDir.load(request.parent)
    cfg = AdaptConfig.from_options(request.hyperparameters, request.options)
    if request.pairs:
        data = pair_rows(request.pairs)
        train, held = stratified_split(data, request.held_out_fraction, cfg.seed)

        def task_of(tokenizer: Any) -> PairTask | LabelTask:
            return PairTask(rows_pairs(train), rows_pairs(held), tokenizer)

        texts = [t for a, b, _ in rows_pairs(train) for t in (a, b)]
    else:
        data = request.train
        if request.held_out is None:
            check_labelled(data)
            train, held = stratified_split(data, request.held_out_fraction, cfg.seed)
        else:
            train, held = data, request.held_out

        def task_of(tokenizer: Any) -> PairTask | LabelTask:
            return LabelTask(train, held, tokenizer, cfg.k)

        texts = train.texts
    progress_file = job_dir / PROGRESS

    def progress(row: dict[str, Any]) -> None:
        with open(progress_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if (job_dir / CANCEL).exists():
            raise Cancelled("cancelled")

    result = fine_tune(parent, task_of, cfg, progress)
    tokenizer = parent.tokenizer()
    guard = sts_guard(request.sts_dev, recover(parent), result.model, tokenizer)
    lineage = lineage_of(parent, data, held, cfg, request.source)
    evaluation = {
        "held_out_items": len(held),
        "parent": result.parent_eval,
        "adapted": result.evaluation,
        "sts_dev_spearman": guard,
    }
    rows = tokenizer.encode(texts)
    rng = np.random.default_rng(cfg.seed)
    sample = [rows[i] for i in sorted(rng.permutation(len(rows))[:20_000].tolist())]
    export_adapted(result, parent, out_dir, request.name, lineage, sample, evaluation)
    return {
        "model": request.name,
        "path": str(out_dir),
        "evaluation": evaluation,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "train_seconds": result.seconds,
        "hyperparameters": result.hp.to_sagemaker(),
        "lineage": lineage,
    }


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    job_dir, out_dir = Path(args[0]), Path(args[1])
    try:
        write_json_atomic(job_dir / RESULT, run(job_dir, out_dir))
    except Cancelled:
        write_json_atomic(job_dir / ERROR, {"status": "cancelled", "message": "cancelled at the end of an epoch"})
        return 3
    except (AdaptError, LabelError, ValueError, FloatingPointError) as exc:
        write_json_atomic(job_dir / ERROR, {"status": "failed", "message": str(exc)})
        return 2
    except Exception as exc:  # the job records why, whatever it was; the server reads error.json
        traceback.print_exc()
        write_json_atomic(job_dir / ERROR, {"status": "failed", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
