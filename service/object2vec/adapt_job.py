"""The adaptation child: `python -m service.object2vec.adapt_job JOB_DIR OUT_DIR` (see service/model/adaptation.py).

Reads JOB_DIR/request.json, holds out a stratified split when the request has none, fine-tunes (one progress line
per epoch; a `cancel` file stops it at the next epoch) or, with `tune` N, runs N fine-tunes and keeps the best,
exports OUT_DIR atomically with report.html and writes result.json: the adapted model against its parent on the
held-out split, STS-B dev Spearman of both as a generic guard, the per-epoch history and the tuning trials.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from service.evaluation import pair_spearman
from service.model.adaptation import (
    CANCEL,
    ERROR,
    PROGRESS,
    REPORT,
    REQUEST,
    RESULT,
    AdaptRequest,
    write_json_atomic,
)
from service.model.labelled import LabelError, Labelled, check_labelled, pair_rows, rows_pairs, stratified_split
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
from service.object2vec.adapt_report import render_adapt_report
from service.processes import exit_process


def sts_guard(path: Path | None, parent: ModelDir, adapted: Any, tokenizer: Any) -> dict[str, Any]:
    """STS-B dev Spearman of the cosines, parent against adapted: what a team trades for its intents. The parent's
    torch copy is recovered only when the guard runs."""
    if path is None or not path.is_file():
        return {"skipped": "no STS-B dev file (O2V_SHARED_DATA/stsbenchmark/sts-dev.csv): the guard is not measured"}
    from service.datasets import read_sts_file

    pairs = [(p.a, p.b, p.score) for p in read_sts_file(path)]

    def embedder(model: Any) -> Any:
        return lambda texts: embed_rows(model, tokenizer.encode(texts))

    before, after = pair_spearman(embedder(recover(parent)), pairs), pair_spearman(embedder(adapted), pairs)
    return {"parent": round(before, 4), "adapted": round(after, 4), "change": round(after - before, 4)}


def _task(request: AdaptRequest, cfg: AdaptConfig) -> tuple[Labelled, Labelled, Any, list[str]]:
    """(the data, its held-out split, the task builder fine_tune takes, the texts the export's rotation reads)."""
    if request.pairs:
        data = pair_rows(request.pairs)
        train, held = stratified_split(data, request.held_out_fraction, cfg.seed)

        def pair_task(tokenizer: Any) -> PairTask:
            return PairTask(rows_pairs(train), rows_pairs(held), tokenizer)

        return data, held, pair_task, [t for a, b, _ in rows_pairs(train) for t in (a, b)]
    data = request.train
    if request.held_out is None:
        check_labelled(data)
        train, held = stratified_split(data, request.held_out_fraction, cfg.seed)
    else:
        train, held = data, request.held_out

    def label_task(tokenizer: Any) -> LabelTask:
        return LabelTask(train, held, tokenizer, cfg.k)

    return data, held, label_task, train.texts


def run(job_dir: Path, out_dir: Path) -> dict[str, Any]:
    request = AdaptRequest.from_json(json.loads((job_dir / REQUEST).read_text()))
    parent = ModelDir.load(request.parent)
    cfg = AdaptConfig.from_options(request.hyperparameters, request.options)
    data, held, task_of, texts = _task(request, cfg)
    progress_file = job_dir / PROGRESS

    def progress(row: dict[str, Any]) -> None:
        with open(progress_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if (job_dir / CANCEL).exists():
            raise Cancelled("cancelled")

    tuning = None
    if request.tune:
        from service.object2vec.adapt_tuning import tune

        metric = "spearman_cosine" if request.pairs else "knn_accuracy"
        tuned = tune(parent, task_of, cfg, request.tune, metric, progress)
        result, tuning = tuned.best, tuned.summary()
    else:
        result = fine_tune(parent, task_of, cfg, progress)
    tokenizer = parent.tokenizer()
    guard = sts_guard(request.sts_dev, parent, result.model, tokenizer)
    lineage = lineage_of(parent, data, held, cfg, request.source)
    evaluation = {
        "held_out_items": len(held),
        "parent": result.parent_eval,
        "adapted": result.evaluation,
        "sts_dev_spearman": guard,
    }
    out = {
        "model": request.name,
        "path": str(out_dir),
        "evaluation": evaluation,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "train_seconds": result.seconds,
        "hyperparameters": result.hp.to_sagemaker(),
        "lineage": lineage,
        "history": result.history,
        "tuning": tuning,
    }
    report = render_adapt_report(out)
    rows = tokenizer.encode(texts)
    rng = np.random.default_rng(cfg.seed)
    sample = [rows[i] for i in sorted(rng.permutation(len(rows))[:20_000].tolist())]
    extra = {"tuning": tuning} if tuning else {}
    export_adapted(result, parent, out_dir, request.name, lineage, sample, evaluation, extra, {REPORT: report})
    (job_dir / REPORT).write_text(report, encoding="utf-8")
    return out


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
    exit_process(main())
