"""`o2v tune`: its arguments and dispatch (local trials, or the SageMaker request), importable without torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tune")
    p.description = (
        "Tune Object2Vec hyperparameters over the ranges of TUNING.json (SageMaker's HyperParameterTuningJobConfig): "
        "locally with Optuna, or as a SageMaker CreateHyperParameterTuningJob request."
    )
    p.add_argument("config", help="training config JSON (static hyperparameters + channels), as for o2v train")
    p.add_argument("tuning", help="TUNING.json: a SageMaker HyperParameterTuningJobConfig")
    p.add_argument("--out", help="output folder: trials/, trials.csv, best/, report.html (and the study journal)")
    p.add_argument("--resume", action="store_true", help="continue the study already in --out")
    p.add_argument("--storage", help="shared Optuna storage: postgresql://, mysql://, sqlite:/// URL or a journal file")
    p.add_argument("--study-name", help="study name in the storage (default: the --out folder's name)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the file's RandomSeed, else 0)")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep every trial's checkpoint.pt, not only the best"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    sm = p.add_argument_group("SageMaker (write the CreateHyperParameterTuningJob request instead of running trials)")
    sm.add_argument("--sagemaker-request", metavar="FILE", help="write the request JSON here")
    sm.add_argument("--role-arn")
    sm.add_argument("--s3-train", metavar="URI")
    sm.add_argument("--s3-validation", metavar="URI")
    sm.add_argument("--s3-output", metavar="URI")
    sm.add_argument(
        "--s3-auxiliary", metavar="URI", help="pretrained embeddings / vocab files, when the config uses them"
    )
    sm.add_argument("--region")
    sm.add_argument("--instance-type", default="ml.m5.2xlarge")
    sm.add_argument("--job-name", help="HyperParameterTuningJobName (default: o2v-<UTC time>)")
    sm.add_argument("--submit", action="store_true", help="also send it with boto3 (needs AWS credentials)")


def _sagemaker(args: argparse.Namespace) -> int:
    from service.object2vec.sagemaker_tuning import Target, local_only_options, submit, write_request

    needed = ("role_arn", "s3_train", "s3_validation", "s3_output", "region")
    missing = ["--" + n.replace("_", "-") for n in needed if not getattr(args, n)]
    if missing:
        raise ValueError(f"--sagemaker-request needs {', '.join(missing)}")
    target = Target(
        args.role_arn,
        args.s3_train,
        args.s3_validation,
        args.s3_output,
        args.region,
        args.s3_auxiliary,
        args.instance_type,
        job_name=args.job_name,
    )
    request = write_request(args.config, args.tuning, target, args.sagemaker_request)
    dropped = local_only_options(json.loads(Path(args.config).read_text()))
    if dropped:
        print(f"note: {', '.join(dropped)} steer o2v train only; the SageMaker job runs without them", file=sys.stderr)
    out = {"request": args.sagemaker_request, "job": request["HyperParameterTuningJobName"]}
    if args.submit:
        out["arn"] = submit(request, args.region)
    print(json.dumps(out))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.sagemaker_request:
        return _sagemaker(args)
    if not args.out:
        raise ValueError("give --out DIR (or --sagemaker-request FILE to write the SageMaker request)")
    from service.object2vec.tuning import TuneOptions, tune

    options = TuneOptions(
        out=Path(args.out),
        resume=args.resume,
        storage=args.storage,
        study_name=args.study_name,
        seed=args.seed,
        progress=not args.quiet,
        keep_checkpoints=args.keep_checkpoints,
        worker_index=args.worker_index,
    )
    summary = tune(args.config, args.tuning, options)
    if args.worker_index is None:
        best = summary.get("best", {})
        print(json.dumps({k: summary[k] for k in ("study", "trials", "seconds")} | {"best": best}))
    return 0
