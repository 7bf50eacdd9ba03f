"""The `o2v index ...` subcommands: bulk load a file into a collection, list, search, classify, cluster,
calibrate classify's out-of-scope threshold, re-embed with the served model, back up and restore, and migrate
collections to the layout this version writes.

They open the settings' store directly (no server needed; a running server sees the changes on its next request);
with Milvus Lite, whose file one process holds at a time, stop the server first.
Heavy imports wait for the handler, so `o2v --help` does not load FAISS or the model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    from service.encoders.base import Encoder
    from service.index.base import CollectionRegistry, VectorCollection
    from service.settings import Settings


def configure(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index")
    common = argparse.ArgumentParser(add_help=False)
    from service.index.config import KINDS
    from service.settings import default_data_dir

    data_dir = str(default_data_dir()).replace("%", "%%")
    common.add_argument("--data-dir", help=f"where collections live (default: O2V_DATA_DIR or {data_dir})")
    common.add_argument("--model-dir", help="model that embeds texts (default: O2V_MODEL_DIR or the bundled one)")
    sub = parser.add_subparsers(dest="index_command", required=True)

    load = sub.add_parser("load", parents=[common], help="embed and upsert the rows of a CSV/TSV/JSONL/JSON file")
    load.add_argument("collection")
    load.add_argument("file")
    load.add_argument("--format", choices=("csv", "tsv", "jsonl", "json"), help="default: from the file suffix")
    load.add_argument("--no-header", action="store_true", help="CSV/TSV without a header: columns are 0-based numbers")
    load.add_argument("--records", help="JSON: the key of the top-level object that holds the rows")
    load.add_argument("--text", default="text", help="column of the text (default: text)")
    load.add_argument("--id", help="column of the item id (default: <file stem>-<row number>)")
    load.add_argument("--id-prefix", help="prefix of default ids (default: the file stem)")
    load.add_argument("--label", help="column stored as metadata[--label-key]")
    load.add_argument("--label-key", default="label")
    load.add_argument("--meta", action="append", default=[], metavar="KEY=COLUMN", help="more metadata columns")
    load.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="metadata every item gets")
    load.add_argument("--index", choices=KINDS, help="index kind if the collection is new")
    load.add_argument("--batch-size", type=int, default=256)
    load.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("list", parents=[common], help="collections and their info, one JSON object a line")

    search = sub.add_parser("search", parents=[common], help="nearest items to a text")
    search.add_argument("collection")
    search.add_argument("text")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="exact metadata match")

    classify = sub.add_parser("classify", parents=[common], help="kNN label of each text (null = out of scope)")
    classify.add_argument("collection")
    classify.add_argument("texts", nargs="+")
    classify.add_argument("--label-key", default="label")
    classify.add_argument("--k", type=int, default=10)
    classify.add_argument("--min-score", type=float, help="default: the collection's (calibrate), else none")

    cluster = sub.add_parser("cluster", parents=[common], help="k-means clusters and the items nearest each centre")
    cluster.add_argument("collection")
    cluster.add_argument("--k", type=int, required=True)
    cluster.add_argument("--seed", type=int, default=1234)
    cluster.add_argument("--representatives", type=int, default=3)

    calibrate = sub.add_parser("calibrate", parents=[common], help="choose classify's min_score from validation data")
    calibrate.add_argument("collection")
    calibrate.add_argument("file", help="JSON Lines of labelled utterances, out-of-scope ones included")
    calibrate.add_argument("--text", default="text", help="field of the utterance (default: text)")
    calibrate.add_argument("--label", default="label", help="field of its label (default: label)")
    calibrate.add_argument("--oos-label", default="oos", help="label meaning out of scope (null too; default: oos)")
    calibrate.add_argument("--label-key", default="label", help="metadata key the collection's items are labelled by")
    calibrate.add_argument("--k", type=int, default=10)
    calibrate.add_argument("--dry-run", action="store_true", help="print the choice without storing it")

    reembed = sub.add_parser("reembed", parents=[common], help="embed every text again with the served model")
    reembed.add_argument("collection")
    reembed.add_argument("--batch-size", type=int, default=256)
    reembed.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    backup = sub.add_parser("backup", parents=[common], help="consistent copy of a collection (SQLite online backup)")
    backup.add_argument("collection")
    backup.add_argument("dir", help="a new or empty folder")

    migrate = sub.add_parser("migrate", parents=[common], help="bring collections to the layout this version writes")
    migrate.add_argument("collections", nargs="*", help="default: every collection")

    restore = sub.add_parser("restore", parents=[common], help="a new collection from a backup folder")
    restore.add_argument("dir")
    restore.add_argument("--name", help="collection name (default: the one backed up)")


def pairs(values: list[str], parse: bool) -> dict[str, Any]:
    """KEY=VALUE options → dict; with `parse`, values that read as JSON scalars (1, true, null) become those."""
    from service.index.loader import scalar_or_text

    out: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {value!r}")
        out[key] = scalar_or_text(raw) if parse else raw
    return out


def run(args: argparse.Namespace) -> int:
    from service.index.registry import open_collections
    from service.settings import Settings

    overrides = {"data_dir": args.data_dir, "model_dir": args.model_dir}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    collections = open_collections(settings)
    try:
        return HANDLERS[args.index_command](args, settings, collections)
    finally:
        collections.close()


def _embedder(settings: Settings, collection: VectorCollection | None = None) -> Callable[[Sequence[str]], np.ndarray]:
    """The served model's text embedder; with a collection, first refused (409) unless it embedded the collection."""
    encoder = _encoder(settings)
    if collection is not None:
        from service.index.fingerprint import model_fingerprint

        collection.check_model(model_fingerprint(encoder))
    return encoder.embed_texts


def _encoder(settings: Settings) -> Encoder:
    from service.encoders import load_encoder

    return load_encoder(settings)


def _load(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    from service.index.loader import Columns, count_records, guess_format, load, read_records

    path = Path(args.file)
    fmt = args.format or guess_format(path)
    header = not args.no_header
    metadata, constants = pairs(args.meta, False), pairs(args.set, True)
    typed = fmt in ("csv", "tsv")
    columns = Columns(args.text, args.id, args.label, args.label_key, metadata, constants, typed)
    collection, _ = collections.create(args.collection, args.index)
    records = read_records(path, fmt, header, args.records)
    total = count_records(path, fmt, header, args.records)
    prefix = args.id_prefix or path.stem
    from service.index.fingerprint import model_fingerprint

    encoder = _encoder(settings)
    embed, model = encoder.embed_texts, model_fingerprint(encoder)
    report = load(collection, records, columns, embed, prefix, args.batch_size, total, not args.quiet, model)
    print(json.dumps({"collection": args.collection, **vars(report), "count": collection.info()["count"]}))
    return 0


def _list(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    for name in collections.names():
        print(json.dumps(collections.get(name).info()))
    return 0


def _search(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    collection = collections.get(args.collection)
    hits = collection.search(_embedder(settings, collection)([args.text])[0], args.top_k, pairs(args.filter, True))
    for hit in hits:
        print(f"{hit.score:.3f}  {hit.id}  {hit.text}  {json.dumps(hit.metadata, ensure_ascii=False)}")
    return 0


def _classify(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    from service.index.classify import classify

    collection = collections.get(args.collection)
    for text, vector in zip(args.texts, _embedder(settings, collection)(args.texts), strict=True):
        result = classify(collection, vector, args.label_key, args.k, args.min_score)
        print(json.dumps({"text": text, "label": result.label, "confidence": round(result.confidence, 4)}))
    return 0


def _cluster(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    from service.index.cluster import cluster

    collection = collections.get(args.collection)
    result = cluster(collection, args.k, args.seed, args.representatives, settings.limits.max_cluster_work)
    for c in result.clusters:
        print(f"cluster {c.cluster}: {c.size} items")
        for item in c.representatives:
            print(f"    {item.id}  {item.text}")
    return 0


def _calibrate(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    from service.index.calibrate import calibrate

    rows = [json.loads(line) for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [row[args.text] for row in rows]
    labels = [None if row.get(args.label) in (None, args.oos_label) else row[args.label] for row in rows]
    collection = collections.get(args.collection)
    result = calibrate(collection, _embedder(settings, collection)(texts), labels, args.label_key, args.k)
    if not args.dry_run:
        collection.set_attributes(result.attributes())
    print(
        f"min_score {result.min_score:.4f}, {len(result.label_min_scores)} per-label threshold(s) "
        f"(held-out balanced accuracy {result.cv_single:.3f} single, {result.cv_per_label:.3f} per label): "
        f"out-of-scope precision {result.oos_precision:.3f}, recall {result.oos_recall:.3f}; "
        f"in-scope accuracy {result.in_scope_accuracy:.3f} on {result.rows} utterances "
        f"({result.out_of_scope_rows} out of scope){' (not stored: --dry-run)' if args.dry_run else ''}"
    )
    print(json.dumps(vars(result)))
    return 0


def _reembed(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    import sys

    from service.index.fingerprint import model_fingerprint

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(json.dumps({"done": done, "total": total}), file=sys.stderr, flush=True)

    encoder = _encoder(settings)
    collection = collections.get(args.collection)
    result = collection.reembed(encoder.embed_texts, model_fingerprint(encoder), args.batch_size, progress)
    print(json.dumps(result))
    return 0


def _backup(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    from service.index.backup import backup

    print(json.dumps(backup(collections, args.collection, Path(args.dir))))
    return 0


def _restore(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    from service.index.backup import restore

    print(json.dumps(restore(collections, Path(args.dir), args.name)))
    return 0


def _migrate(args: argparse.Namespace, settings: Settings, collections: CollectionRegistry) -> int:
    for name in args.collections or collections.names():
        print(json.dumps({"collection": name, "changes": collections.migrate(name)}))
    return 0


HANDLERS = {
    "load": _load,
    "list": _list,
    "search": _search,
    "classify": _classify,
    "cluster": _cluster,
    "calibrate": _calibrate,
    "reembed": _reembed,
    "backup": _backup,
    "restore": _restore,
    "migrate": _migrate,
}
