"""What a drift stream's create and delete cost as uploaded baselines grow: the monitor keeps its state in one JSON
document (`<data_dir>/.o2v/drift/state.json`), and a delete is saved before it answers, so each delete writes every
baseline. In-process app (bundled model), `PUT` then `DELETE /drift/streams/racing`, after 8 baselines of N scores.

    python -m bench.drift_state [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from bench.tables import print_table
from service.api.app import create_app
from service.settings import Settings

KEY = "bench-drift-state-key"
SIZES = (0, 10_000, 100_000)
BASELINES = 8


def put_and_delete_ms(size: int, repeats: int) -> tuple[float, float]:
    """Median milliseconds of one stream's PUT + DELETE after BASELINES uploads of `size` scores; the state's MB."""
    with tempfile.TemporaryDirectory(prefix="o2v-bench-drift-state-") as data_dir:
        app = create_app(Settings(data_dir=data_dir, api_key=KEY))
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
            scores = [round(0.3 + 0.6 * ((i * 7919) % 100_000) / 100_000, 6) for i in range(size)]
            body = json.dumps({"scores": scores})
            for n in range(BASELINES if size else 0):
                answer = client.put(
                    f"/drift/baseline/big{n}", content=body, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 200, answer.text
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                assert client.put("/drift/streams/racing").status_code in (200, 201)
                assert client.delete("/drift/streams/racing").status_code == 204
                times.append(time.perf_counter() - started)
        state = Path(data_dir) / ".o2v" / "drift" / "state.json"
        return statistics.median(times) * 1000, state.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="PUT + DELETE pairs per size (default 10)")
    args = parser.parse_args()
    rows = []
    for size in SIZES:
        ms, mb = put_and_delete_ms(size, args.repeats)
        rows.append(
            {"baselines": f"{BASELINES if size else 0} x {size:,}", "ms": round(ms, 1), "state_mb": round(mb, 2)}
        )
    print_table(
        rows, [("baselines", "uploaded baselines"), ("ms", "PUT + DELETE ms (median)"), ("state_mb", "state MB")]
    )
    print(json.dumps({"bench": "drift_state", "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()
