"""The `o2v` command line: one subcommand per job, each a thin call into the package."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, configure: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Register a subcommand; other modules add theirs the same way."""

    def wrap(handler: Handler) -> Handler:
        COMMANDS[name] = (configure, handler)
        return handler

    return wrap


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="training config JSON (SageMaker hyperparameters + channels)")
    p.add_argument("--output-dir", help="override the config's output_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("train", _train_args)
def _train(args: argparse.Namespace) -> int:
    from service.object2vec.train import TrainConfig, train

    log = train(TrainConfig.load(args.config, args.output_dir), progress=not args.quiet)
    summary = {k: log[k] for k in ("best_epoch", "stopped_early", "train_seconds", "validation", "test") if k in log}
    print(json.dumps(summary))
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_dir", help="a training output folder (checkpoint.pt, training_log.json)")
    p.add_argument("model_dir", help="the model directory to write")
    p.add_argument("--embedding-dtype", default="float32", choices=("float32", "float16", "int8"))
    p.add_argument("--name", help="model name in model_card.json (default: the folder name)")
    p.add_argument("--training-data", help="a JSON file describing the training data, kept in model_card.json")


@command("export", _export_args)
def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.object2vec.export import export_model

    extra = {"training_data": json.loads(Path(args.training_data).read_text())} if args.training_data else None
    out = export_model(args.checkpoint_dir, args.model_dir, args.embedding_dtype, args.name, extra)
    print(f"wrote {out}")
    return 0


def _tokens_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_dir", help="a training output folder (checkpoint.pt)")
    p.add_argument("vocab", help="vocab.json ({token: id}) naming the table's rows")
    p.add_argument("out", help="GloVe-format text file to write")


@command("export-embeddings", _tokens_args)
def _export_embeddings(args: argparse.Namespace) -> int:
    from service.object2vec.export import write_token_embeddings

    print(f"wrote {write_token_embeddings(args.checkpoint_dir, args.vocab, args.out)} token vectors to {args.out}")
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", nargs="?", help="model directory (default: the served one, O2V_MODEL_DIR)")


@command("eval", _eval_args)
def _eval(args: argparse.Namespace) -> int:
    from service.encoders.base import l2_normalize
    from service.encoders.onnx import OnnxEncoder
    from service.evaluation import clinc, sts_spearman
    from service.model.model_dir import ModelDir
    from service.settings import get_settings

    encoder = OnnxEncoder(ModelDir.load(args.model_dir or get_settings().model_dir))

    def embed(texts: Sequence[str]) -> Any:
        return l2_normalize(encoder.embed_texts(texts))

    print(json.dumps({"model": encoder.name, "sts_test_spearman": round(sts_spearman(embed), 4), **clinc(embed)}))
    return 0


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="sentence-pair CSV or TSV")
    p.add_argument("dst", help="Object2Vec JSON Lines to write")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json (e.g. from a model directory)")
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--columns", default="0,1,2", help="0-based columns of text0,text1,label")
    p.add_argument("--delimiter", help="default: tab for .tsv/.txt, comma otherwise")
    p.add_argument("--label-scale", type=float, default=1.0, help="multiply labels, e.g. 0.2 for 0-5 scores")
    p.add_argument("--skip-header", action="store_true")


@command("convert", _convert_args)
def _convert(args: argparse.Namespace) -> int:
    from service.object2vec.data import convert_pairs
    from service.text import TextTokenizer

    cols = tuple(int(c) for c in args.columns.split(","))
    if len(cols) != 3:
        raise SystemExit("--columns takes three 0-based column numbers: text0,text1,label")
    tok = TextTokenizer.from_file(args.tokenizer, args.max_seq_len)
    n = convert_pairs(args.src, args.dst, tok, cols, args.delimiter, args.label_scale, args.skip_header)
    print(f"wrote {n} records to {args.dst}")
    return 0


def _distill_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder for the distillation channels and auxiliary files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--gold-repeats", type=int, default=2, help="copies of the human-scored STS-B train pairs")
    p.add_argument("--dev-train-pairs", type=int, default=0, help="STS-B dev pairs moved into training")
    p.add_argument("--crops", action="store_true", help="add a cropped copy of each longer sentence to the pool")
    p.add_argument("--per-band", type=int, default=2, help="teacher pairs per sentence in each similarity band")


@command("distill-data", _distill_args)
def _distill(args: argparse.Namespace) -> int:
    from service.object2vec.teacher import build

    out = build(
        args.out, args.seed, args.max_seq_len, 20, args.gold_repeats, args.dev_train_pairs, args.crops, args.per_band
    )
    print(json.dumps(out))
    return 0


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="default: O2V_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default: O2V_PORT or 8000")
    p.add_argument("--model-dir", help="a model directory (default: the bundled model)")
    p.add_argument("--backend", choices=("onnx", "sagemaker"), help="default: O2V_BACKEND or onnx")
    p.add_argument("--data-dir", help="where collections live")
    p.add_argument("--workers", type=int, help="uvicorn worker processes")
    p.add_argument(
        "--sagemaker",
        action="store_true",
        help="run as a SageMaker container: 0.0.0.0:8080, bodies up to 6 MiB, model from /opt/ml/model",
    )


@command("serve", _serve_args)
def _serve(args: argparse.Namespace) -> int:
    from service.api.server import serve

    names = ("host", "port", "model_dir", "backend", "data_dir", "workers")
    return serve({n: getattr(args, n) for n in names if getattr(args, n) is not None}, sagemaker=args.sagemaker)


def _index_args(p: argparse.ArgumentParser) -> None:
    from service.index.commands import configure

    configure(p)


@command("index", _index_args)
def _index(args: argparse.Namespace) -> int:
    """`o2v index load|list|search|classify|cluster`: collections from the shell (service/index/commands.py)."""
    from service.index.commands import run

    return run(args)


def _drift_args(p: argparse.ArgumentParser) -> None:
    from service.drift.commands import configure

    configure(p)


@command("drift", _drift_args)
def _drift(args: argparse.Namespace) -> int:
    from service.drift.commands import run

    return run(args)


def _tune_args(p: argparse.ArgumentParser) -> None:
    from service.object2vec.tune_command import configure

    configure(p)


@command("tune", _tune_args)
def _tune(args: argparse.Namespace) -> int:
    """`o2v tune CONFIG TUNING.json`: SageMaker-style tuning, locally or as a SageMaker request."""
    from service.object2vec.tune_command import run

    return run(args)


def _loadtests() -> Any:
    """loadtests/run.py of the source checkout (like bench/, not part of the installed package), or None."""
    from service.settings import REPO

    if not (REPO / "loadtests" / "run.py").is_file():
        return None
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import loadtests.run

    return loadtests.run


def _loadtest_args(p: argparse.ArgumentParser) -> None:
    runner = _loadtests()
    if runner is None:
        p.description = "needs a source checkout (loadtests/) with the dev extra installed (locust, psutil)"
    else:
        p.description = "the service on a loopback port under locust's callers: reports, summary, SLO check"
        runner.configure(p)


@command("loadtest", _loadtest_args)
def _loadtest(args: argparse.Namespace) -> int:
    """`o2v loadtest`: loadtests/run.py (python -m loadtests.run) under the o2v command."""
    runner = _loadtests()
    if runner is None:
        raise FileNotFoundError("o2v loadtest runs from a source checkout: loadtests/run.py is not here")
    return runner.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="o2v", description="Object2Vec embedding service")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _) in COMMANDS.items():
        configure(sub.add_parser(name))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"o2v {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
