"""`o2v drift report` and `o2v drift baseline STREAM FILE`: against a running service (--url) or the stored state;
`o2v drift tokens`: write a model directory's trained-token rows and validation token rates; `o2v drift export`: the
live window behind a verdict, as files."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from service.errors import EX_IOERR, EX_TEMPFAIL, NotFound

HTTP_EXIT_CODES = {503: EX_TEMPFAIL, 507: EX_IOERR}
"""`--url` answers a script can act on: 503 (busy or overloaded, with Retry-After) means run it again later, 507 means
free the service's disk; any other HTTP error exits 1."""


def configure(subparsers: argparse._SubParsersAction) -> None:
    sub = subparsers.add_parser("drift").add_subparsers(dest="drift_command", required=True)
    report = sub.add_parser("report", help="status, statistics and histograms of every stream, as text")
    report.add_argument("--stream", help="only this stream")
    report.add_argument("--json", action="store_true", help="the GET /drift document instead of text")
    baseline = sub.add_parser("baseline", help="replace a stream's baseline from a file")
    baseline.add_argument("stream")
    baseline.add_argument(
        "file",
        help='{"scores": [...]} or {"pairs": [[a, b, label?], ...]}, a JSON list, JSON Lines, or a number a line',
    )
    baseline.add_argument("--source", help="a note kept with the baseline (default: the file name)")
    tokens = sub.add_parser("tokens", help="record which token rows training updated, and the validation texts' rates")
    tokens.add_argument("--model-dir", help="default: O2V_MODEL_DIR")
    tokens.add_argument(
        "--train-channel",
        nargs="*",
        help="Object2Vec train channel(s), JSON Lines with in0/in1 token ids: the exact trained rows. Without it, "
        "the distillation corpus of the bundled model (the files its card lists, read from O2V_SHARED_DATA).",
    )
    sample = sub.add_parser("sample", help="write a sample of the validation texts' embeddings (embedding drift)")
    sample.add_argument("--model-dir", help="default: O2V_MODEL_DIR")
    sample.add_argument("--n", type=int, default=500, help="embeddings kept (int8: n × dim bytes)")
    export = sub.add_parser("export", help="write the live window behind a stream's verdict as training material")
    export.add_argument("--stream", required=True)
    export.add_argument(
        "--out", required=True, help="folder for verdict.json, scores.jsonl, texts.jsonl and pairs.jsonl"
    )
    for q in (report, baseline, export):
        q.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000 (default: the stored state)")
        q.add_argument("--api-key", default=os.environ.get("O2V_API_KEY"), help="default: $O2V_API_KEY")
        q.add_argument("--data-dir", help="without --url: the service's data_dir (default: O2V_DATA_DIR)")
        q.add_argument("--model-dir", help="without --url: the served model (default: O2V_MODEL_DIR)")


def run(args: argparse.Namespace) -> int:
    commands = {"report": _report, "baseline": _baseline, "tokens": _tokens, "sample": _sample, "export": _export}
    try:
        return commands[args.drift_command](args)
    except urllib.error.HTTPError as exc:
        print(f"o2v drift: error: {exc.code} {_error_message(exc.read())}", file=sys.stderr)
        return HTTP_EXIT_CODES.get(exc.code, 1)
    except urllib.error.URLError as exc:
        print(f"o2v drift: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 1


def _error_message(body: bytes) -> str:
    """The `error.message` of the service's error answer, or the body as it came (a proxy's page), on one line."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return " ".join(body.decode(errors="replace").split())[:500]


def _report(args: argparse.Namespace) -> int:
    from service.drift.terminal import render_text

    if args.url:
        query = f"?stream={args.stream}" if args.stream else ""
        doc = _http(args, "GET", f"/drift{query}")
    else:
        doc = _offline(args).report()
        if args.stream:
            if args.stream not in doc["streams"]:
                raise NotFound.stream(args.stream)
            doc["streams"] = {args.stream: doc["streams"][args.stream]}
    print(json.dumps(doc, indent=2) if args.json else render_text(doc))
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.drift.files import read_baseline_file

    body = {**read_baseline_file(args.file), "source": args.source or Path(args.file).name}
    if args.url:
        answer = _http(args, "PUT", f"/drift/baseline/{args.stream}", body)
    elif "pairs" in body:
        raise ValueError("pairs need the model to score them: give --url of a running service")
    else:
        # a running service would overwrite this at its next write: offline is for a stopped service
        described = _offline(args).set_baseline(args.stream, body["scores"], body["source"])
        answer = {"stream": args.stream, "baseline": described}
    print(json.dumps(answer))
    return 0


def _tokens(args: argparse.Namespace) -> int:
    """Trained rows: ids in the train channel, or (bundled model, no channel kept) in the distillation corpus's
    sentences, an upper bound: a sentence the corpus lists may not have reached a training pair. Validation rates:
    the STS-B dev sentences, the validation channel of the card."""
    from pathlib import Path

    from service import datasets
    from service.drift.tokens import channel_token_rows, trained_mask, write_token_files
    from service.model.model_dir import ModelDir
    from service.settings import Settings

    model = ModelDir.load(args.model_dir or Settings().model_dir)
    tokenizer = model.tokenizer()
    if args.train_channel:
        rows: Iterator[list[int]] = (row for path in args.train_channel for row in channel_token_rows(path))
        how: dict[str, Any] = {"from": "train channel token ids", "files": [Path(p).name for p in args.train_channel]}
    else:
        texts = [t for p in datasets.read_sts("train") for t in (p.a, p.b)]
        texts += [t for split in ("train", "val") for t, _ in datasets.read_clinc(split)]
        texts += [t for t, _, _ in datasets.read_reviews()]
        rows = iter(tokenizer.encode(texts))
        how = {
            "from": "tokens of the distillation corpus's sentences (STS-B train, CLINC150 train+val, review "
            "sentences); the train channel was not kept, so this is an upper bound of the trained rows",
            "files": datasets.source_files(),
        }
    trained = trained_mask(rows, tokenizer.vocab_size)
    validation = [t for p in datasets.read_sts("dev") for t in (p.a, p.b)]
    encoded = tokenizer.encode_counted(validation)
    source = {**how, "validation": f"{len(validation)} STS-B dev sentences"}
    written = write_token_files(
        model.path, trained, encoded.rows, encoded.lengths, tokenizer.unk_id, tokenizer.max_seq_len, source
    )
    print(json.dumps(written))
    return 0


def _sample(args: argparse.Namespace) -> int:
    """`n` STS-B dev sentences (the validation texts), embedded by the model's encoder 0, as int8 unit vectors."""
    import random

    from service import datasets
    from service.drift.embeddings import write_sample
    from service.encoders import load_encoder
    from service.settings import Settings

    settings = Settings(**({"model_dir": args.model_dir} if args.model_dir else {}))
    texts = sorted({t for p in datasets.read_sts("dev") for t in (p.a, p.b)})
    texts = random.Random(0).sample(texts, min(args.n, len(texts)))
    path = write_sample(settings.model_dir, load_encoder(settings).embed_texts(texts), f"{len(texts)} STS-B dev")
    print(json.dumps({"file": str(path), "n": len(texts), "bytes": path.stat().st_size}))
    return 0


def _export(args: argparse.Namespace) -> int:
    """verdict.json (the stream's report), scores.jsonl (`{"score": s}` a line: an `o2v drift baseline` file) and,
    with kept texts, texts.jsonl (`{"text", rates…, "at"}`: texts to label as new training pairs) and pairs.jsonl
    (the stream's /similarity pairs as an Object2Vec channel: `in0`/`in1` token ids, `label` the live score to
    replace by a real label, the texts beside them). Offline (no --url) there are never texts: they are not
    written to the state file."""
    from pathlib import Path

    doc = _http(args, "GET", f"/drift/export/{args.stream}") if args.url else _offline(args).export(args.stream)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdict.json").write_text(json.dumps(doc["verdict"], indent=1))
    (out / "scores.jsonl").write_text("".join(json.dumps({"score": s}) + "\n" for s in doc["scores"]))
    pairs = doc.get("pairs") or []
    for name, rows in (("texts", doc["texts"]), ("pairs", pairs)):
        if rows:
            (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts = {"scores": len(doc["scores"]), "texts": len(doc["texts"]), "pairs": len(pairs)}
    print(json.dumps({"stream": args.stream, "status": doc["verdict"]["status"], **counts}))
    return 0


def _offline(args: argparse.Namespace) -> Any:
    from service.drift import DriftMonitor
    from service.model.model_dir import ModelDir
    from service.settings import Settings

    overrides = {"data_dir": args.data_dir, "model_dir": args.model_dir}
    settings = Settings(**{k: v for k, v in overrides.items() if v})
    return DriftMonitor.from_settings(settings, ModelDir.load(settings.model_dir).card)


def _http(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    from service.drift.notify import OPENER

    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method, headers=headers)
    with OPENER.open(request, timeout=300) as response:  # no redirects: the API key goes to --url only
        return json.loads(response.read())
