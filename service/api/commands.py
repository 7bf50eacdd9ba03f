"""`o2v serve`: the HTTP service under uvicorn (service/api/server.py), or as a SageMaker container."""

from __future__ import annotations

import argparse


def configure(subparsers: argparse._SubParsersAction) -> None:
    from service.settings import default_data_dir

    p = subparsers.add_parser(
        "serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the data directory's path on a line of its own
        description="Serve the HTTP API in the foreground, until Ctrl-C or SIGTERM.\n"
        f"Collections and drift state live in --data-dir, O2V_DATA_DIR or else:\n  {default_data_dir()}",
    )
    p.add_argument("--host", help="default: O2V_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default: O2V_PORT or 8000")
    p.add_argument("--model-dir", help="a model directory (default: the bundled model)")
    p.add_argument("--backend", choices=("onnx", "sagemaker"), help="default: O2V_BACKEND or onnx")
    p.add_argument("--data-dir", help="collections and drift state (default: O2V_DATA_DIR, else the path above)")
    p.add_argument("--workers", type=int, help="uvicorn worker processes")
    p.add_argument(
        "--sagemaker",
        action="store_true",
        help="run as a SageMaker container: 0.0.0.0:8080, bodies up to 6 MiB, model from /opt/ml/model",
    )


def run(args: argparse.Namespace) -> int:
    from service.api.server import serve

    names = ("host", "port", "model_dir", "backend", "data_dir", "workers")
    return serve({n: getattr(args, n) for n in names if getattr(args, n) is not None}, sagemaker=args.sagemaker)
