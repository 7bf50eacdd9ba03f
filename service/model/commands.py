"""`o2v adapt COLLECTION --label-key K --name N` and `o2v models list|promote|rm`, on a data directory.

They act on the same files a server reads (data_dir/.o2v/models), so a server sharing the data directory sees an
adapted model at once, and a promotion here switches its default model at its next request.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def configure(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="where collections and models live (default: O2V_DATA_DIR)")
    adapt = subparsers.add_parser(
        "adapt", parents=[common], help="train a new model on a collection's labelled items (needs the train extra)"
    )
    adapt.add_argument("collection")
    adapt.add_argument("--label-key", required=True, help="the metadata key of each item's label")
    adapt.add_argument("--name", required=True, help="the new model's name, [A-Za-z0-9_-]{1,64}")
    adapt.add_argument("--oos-label", default="oos", help="label of out-of-scope items (default: oos)")
    adapt.add_argument("--parent", help="model to start from (default: the default model)")
    adapt.add_argument("--hyperparameters", default="{}", help="JSON map of SageMaker hyperparameters")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--held-out", type=float, default=0.2, help="share of each label held out (default 0.2)")
    adapt.add_argument("--tune", type=int, default=0, help="tuning trials, 0 to 20 (default 0: one fine-tune)")
    models = subparsers.add_parser("models", help="the models of the data directory's registry")
    sub = models.add_subparsers(dest="models_command", required=True)
    sub.add_parser("list", parents=[common], help="one JSON object a line, the default marked")
    promote = sub.add_parser("promote", parents=[common], help="make a model the default (rollback: promote back)")
    promote.add_argument("name")
    remove = sub.add_parser("rm", parents=[common], help="remove an adapted model that is not the default")
    remove.add_argument("name")


def _registry(args: argparse.Namespace) -> Any:
    from service.model.model_dir import ModelDir
    from service.model.registry import ModelRegistry
    from service.settings import Settings

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    configured = ModelDir.load(settings.model_dir)
    return settings, ModelRegistry(settings.data_dir, configured.name, configured.path, settings.default_model)


def run(args: argparse.Namespace) -> int:
    from service.model.registry import ModelConflict, UnknownModel

    try:
        return _run(args)
    except (UnknownModel, ModelConflict) as exc:  # the caller's mistake: exit 2 with the reason
        raise ValueError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    settings, registry = _registry(args)
    if args.command == "adapt":
        return _adapt(args, settings, registry)
    from service.model.registry import openai_model

    if args.models_command == "list":
        default = registry.default()
        for entry in registry.entries():
            print(json.dumps(openai_model(entry, default)))
    elif args.models_command == "promote":
        print(json.dumps(registry.promote(args.name)))
    else:
        registry.remove(args.name)
        print(json.dumps({"removed": args.name}))
    return 0


def _adapt(args: argparse.Namespace, settings: Any, registry: Any) -> int:
    from tqdm import tqdm

    from service.index.registry import open_collections
    from service.model.adaptation import (
        ERROR,
        MAX_TUNE_TRIALS,
        REQUEST,
        RESULT,
        AdaptRequest,
        check_train_extra,
        read_progress,
        spawn,
        write_json_atomic,
    )
    from service.model.labelled import check_labelled, labelled_items

    check_train_extra()
    if not 0 <= args.tune <= MAX_TUNE_TRIALS:
        raise ValueError(f"--tune must be between 0 and {MAX_TUNE_TRIALS} trials, not {args.tune}")
    out = registry.target(args.name)
    parent = registry.model_dir(args.parent or registry.default())
    collections = open_collections(settings)
    try:
        collection = collections.get(args.collection)
        data = labelled_items(collection, args.label_key, args.oos_label, settings.adapt_max_items)
    finally:
        collections.close()
    check_labelled(data)
    hyperparameters = json.loads(args.hyperparameters)
    sts = settings.shared_data / "stsbenchmark" / "sts-dev.csv"
    request = AdaptRequest(
        args.name,
        parent.path,
        data,
        held_out_fraction=args.held_out,
        hyperparameters=hyperparameters,
        options={"seed": args.seed, "threads": settings.adapt_threads},
        source=f"collection {args.collection!r}, label_key {args.label_key!r} (o2v adapt)",
        sts_dev=sts if sts.is_file() else None,
        tune=args.tune,
    )
    job_dir = settings.data_dir / ".o2v" / "jobs" / f"cli-{args.name}-{int(time.time())}"
    job_dir.mkdir(parents=True)
    write_json_atomic(job_dir / REQUEST, request.to_json())
    child = spawn(job_dir, out)
    epochs = int(hyperparameters.get("epochs", 10))
    total, unit = (args.tune, "trial") if args.tune else (epochs, "epoch")
    with tqdm(total=total, desc=f"adapt {args.name}", unit=unit) as bar:
        while child.poll() is None:
            time.sleep(0.5)
            _advance(bar, read_progress(job_dir), args.tune)
        _advance(bar, read_progress(job_dir), args.tune, done=child.returncode == 0)
    if not (job_dir / RESULT).is_file():
        error = json.loads((job_dir / ERROR).read_text()) if (job_dir / ERROR).is_file() else {}
        raise ValueError(f"adaptation failed: {error.get('message') or Path(job_dir / 'log.txt').read_text()[-800:]}")
    result = json.loads((job_dir / RESULT).read_text())
    print(json.dumps({"model": result["model"], "evaluation": result["evaluation"]}))
    return 0


def _advance(bar: Any, history: list[dict[str, Any]], trials: int = 0, done: bool = False) -> None:
    """Epochs done, or with tuning the trials done (a trial is done once a later one reports, or the job ends)."""
    if not history:
        return
    last = history[-1]
    postfix = {"knn_accuracy": last.get("validation", {}).get("knn_accuracy")}
    if trials:
        count = trials if done else int(last.get("trial", 1)) - 1
        postfix = {"trial": f"{last.get('trial')}/{trials}", "epoch": last["epoch"], **postfix}
    else:
        count = max(row["epoch"] for row in history)
    if count > bar.n:
        bar.update(count - bar.n)
    bar.set_postfix(postfix)
