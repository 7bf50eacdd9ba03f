"""`o2v datasets fetch [NAME ...] [--to DIR] [--mirror URL]`: the public datasets the scenarios and benchmarks read,
from their original sources (service/dataset_fetch.py), into the shared-data folder (O2V_SHARED_DATA)."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.dataset_fetch import SOURCES, fetch, select


def configure(subparsers: argparse._SubParsersAction) -> None:
    sub = subparsers.add_parser("datasets").add_subparsers(dest="datasets_command", required=True)
    p = sub.add_parser(
        "fetch",
        help="download STS-B, CLINC150 and the review sentences, checked against pinned sha256",
        description="Downloads each dataset from its original public source, checks every file against its pinned "
        "sha256 and unpacks it into DIR/<dataset>/, the layout O2V_SHARED_DATA points at. A dataset whose files do "
        "not match is refused and nothing of it is written; one already there is checked, not downloaded again. "
        "Prints each dataset's source and licence. HTTP(S)_PROXY are honoured.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help=f"only these ({', '.join(s.name for s in SOURCES)})")
    p.add_argument(
        "--to", metavar="DIR", help="the shared-data folder (default: O2V_SHARED_DATA, ../shared/data in a checkout)"
    )
    p.add_argument(
        "--mirror",
        metavar="URL",
        help="fetch from a mirror that serves the same files as URL/<dataset>/<file name> (e.g. "
        "URL/clinc150/data_full.json) instead of the original hosts",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds to connect and between reads (default 60)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def run(args: argparse.Namespace) -> int:
    from service.settings import Settings

    root = Path(args.to) if args.to else Settings().shared_data
    for source in select(args.names):
        print(f"{source.name}: {source.title}\n  source: {source.url}\n  licence: {source.licence}", flush=True)
        status = fetch(source, root, args.mirror, args.timeout, progress=not args.no_progress)
        done = "already there, sha256 checked" if status == "present" else "fetched, sha256 checked"
        print(f"  {done}: {root / source.name}", flush=True)
    return 0
