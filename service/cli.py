"""The `o2v` command line: one dispatch table of per-domain command modules, and the one place errors become exit
codes.

Each module in DOMAINS has `configure(subparsers)`, which adds its subcommands (the model's, serve, index, drift,
tune, datasets), and `run(args)`, which does the one asked for; heavy imports wait for `run`, so `o2v --help`
loads neither torch nor FAISS nor the model, nor numpy (tests/test_seams.py checks). A ServiceError exits with its
own code (service/errors.py): 2 for a caller's mistake, 69 when a store or backend is unavailable, 75 when a
database is locked by another writer past its wait, 74 when the disk is full, 76 when a backend answered nonsense; a
plain ValueError or a missing file is the caller's mistake too (2). A full disk or a locked database that surfaces as a
plain OSError or SQLite error gets the same one-line message and code (storage_failure), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence
from types import ModuleType

from service.errors import EX_USAGE, ServiceError, storage_failure
from service.processes import exit_process

DOMAINS = (
    "service.object2vec.commands",  # train, export, export-embeddings, eval, convert, distill-data
    "service.api.commands",  # serve
    "service.index.commands",  # index load|list|search|classify|cluster|calibrate|reembed|backup|restore
    "service.drift.commands",  # drift report|baseline|tokens|sample|export
    "service.object2vec.tune_command",  # tune
    "service.datasets_command",  # datasets fetch
    "service.model.commands",  # adapt, models list|promote|rm
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The parser, and for each subcommand the module whose `configure` added it (and whose `run` runs it)."""
    parser = argparse.ArgumentParser(prog="o2v", description="Object2Vec embedding service")
    sub = parser.add_subparsers(dest="command", required=True)
    owners: dict[str, ModuleType] = {}
    for path in DOMAINS:
        module = importlib.import_module(path)
        module.configure(sub)
        owners |= {name: module for name in sub.choices if name not in owners}
    return parser, owners


def main(argv: Sequence[str] | None = None) -> int:
    parser, owners = build_parser()
    args = parser.parse_args(argv)
    try:
        return owners[args.command].run(args)
    except ServiceError as exc:
        print(f"o2v {args.command}: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, FileNotFoundError) as exc:
        print(f"o2v {args.command}: error: {exc}", file=sys.stderr)
        return EX_USAGE
    except (OSError, sqlite3.Error) as exc:
        mapped = storage_failure(exc)
        if mapped is None:
            raise
        print(f"o2v {args.command}: error: {mapped.message}", file=sys.stderr)
        return mapped.exit_code


if __name__ == "__main__":
    exit_process(main())
