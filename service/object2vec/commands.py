"""The model commands of `o2v`: train, export, export-embeddings, eval, convert and distill-data (`o2v tune` is
service/object2vec/tune_command.py). Importable without torch: each handler imports what it runs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="training config JSON (SageMaker hyperparameters + channels)")
    p.add_argument("--output-dir", help="override the config's output_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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


def _export_embeddings(args: argparse.Namespace) -> int:
    from service.object2vec.export import write_token_embeddings

    print(f"wrote {write_token_embeddings(args.checkpoint_dir, args.vocab, args.out)} token vectors to {args.out}")
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", nargs="?", help="model directory (default: the served one, O2V_MODEL_DIR)")


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


def _distill(args: argparse.Namespace) -> int:
    from service.object2vec.teacher import build

    out = build(
        args.out, args.seed, args.max_seq_len, 20, args.gold_repeats, args.dev_train_pairs, args.crops, args.per_band
    )
    print(json.dumps(out))
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler]] = {
    "train": (_train_args, _train),
    "export": (_export_args, _export),
    "export-embeddings": (_tokens_args, _export_embeddings),
    "eval": (_eval_args, _eval),
    "convert": (_convert_args, _convert),
    "distill-data": (_distill_args, _distill),
}


def configure(subparsers: argparse._SubParsersAction) -> None:
    for name, (arguments, _) in COMMANDS.items():
        arguments(subparsers.add_parser(name))


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.command][1](args)
