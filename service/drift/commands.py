"""`o2v drift report` and `o2v drift baseline STREAM FILE`: against a running service (--url) or the stored state."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="drift_command", required=True)
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
    for q in (report, baseline):
        q.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000 (default: the stored state)")
        q.add_argument("--api-key", default=os.environ.get("O2V_API_KEY"), help="default: $O2V_API_KEY")
        q.add_argument("--data-dir", help="without --url: the service's data_dir (default: O2V_DATA_DIR)")
        q.add_argument("--model-dir", help="without --url: the served model (default: O2V_MODEL_DIR)")


def run(args: argparse.Namespace) -> int:
    try:
        return _report(args) if args.drift_command == "report" else _baseline(args)
    except urllib.error.HTTPError as exc:
        print(f"o2v drift: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"o2v drift: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 1


def _report(args: argparse.Namespace) -> int:
    from service.drift.terminal import render_text

    if args.url:
        query = f"?stream={args.stream}" if args.stream else ""
        doc = _http(args, "GET", f"/drift{query}")
    else:
        doc = _offline(args).report()
        if args.stream:
            if args.stream not in doc["streams"]:
                raise ValueError(f"no drift stream named {args.stream!r}")
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


def _offline(args: argparse.Namespace) -> Any:
    from service.drift import DriftMonitor
    from service.encoders.model_dir import ModelDir
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
