"""`o2v drift report`: the GET /drift document as plain text, with the two histograms as bar-character strips."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BARS = " ▁▂▃▄▅▆▇█"
COLUMNS = ("ks_pvalue", "linf", "psi", "js", "wasserstein_norm", "shift_z")
MARKS = {"drift": "!!", "warning": "! ", None: "  "}


def strip(fractions: Sequence[float], top: float) -> str:
    """One character per bin, its height relative to `top`."""
    top = top or 1.0
    return "".join(BARS[min(len(BARS) - 1, round(f / top * (len(BARS) - 1)))] for f in fractions)


def render_text(doc: dict[str, Any]) -> str:
    cfg = doc["config"]
    lines = [
        f"drift report · model {doc.get('model')} · {doc['generated_at']} · window {cfg['window']}, "
        f"verdict from {cfg['min_samples']} scores",
        "",
        f"{'stream':<22}{'status':<9}{'live':>6}{'base':>6}  " + "".join(f"{c:>18}" for c in COLUMNS),
    ]
    for name, s in doc["streams"].items():
        cells = ""
        for col in COLUMNS:
            entry = s["statistics"].get(col)
            cells += f"{'-':>18}" if entry is None else f"{entry['value']:>16.4g}{MARKS[entry.get('crossed')]}"
        lines.append(f"{name:<22}{s['status']:<9}{s['n_live']:>6}{s['n_baseline']:>6}  {cells}")
    thresholds = cfg["thresholds"]
    lines.append(f"{'thresholds w / d':<43}" + "".join(f"{_pair(thresholds.get(c)):>18}" for c in COLUMNS))
    lines.append("(!! past the drift threshold, ! past the warning threshold)")
    for name, s in doc["streams"].items():
        lines += ["", f"[{name}] {s['status']} — {s['advice']}"]
        if s.get("domain"):
            lines.append(f"  vs the validation domain (model card): {s['domain']['status']}")
        hist = s.get("histogram")
        if hist:
            top = max([*hist["baseline"], *hist["live"]])
            lo, hi = hist["edges"][0], hist["edges"][-1]
            lines.append(f"  baseline |{strip(hist['baseline'], top)}|  mean {s['baseline']['mean']:.4f}")
            live_mean = f"mean {s['live']['mean']:.4f}" if s["n_live"] else "no scores"
            lines.append(f"  live     |{strip(hist['live'], top)}|  {live_mean}")
            lines.append(f"           {lo:<.3f}{hi:>{len(hist['live']) - 3}.3f}")
    return "\n".join(lines)


def _pair(limit: dict[str, float] | None) -> str:
    return "-" if limit is None else f"{limit['warning']:g} / {limit['drift']:g}"
