"""report.html for `o2v tune`: what a person reads at a glance, as inline SVG (no JavaScript, no network).

The objective per trial with the best-so-far line, each tuned hyperparameter against the objective, the
parameters' importances, and every trial's per-epoch validation curve (where pruning cut trials short).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from service.object2vec.tuning_config import Range, TuningSpec

COMPLETE, PRUNED, BEST, GRID, AXIS = "#1c7ed6", "#adb5bd", "#e8590c", "#e9ecef", "#495057"
W, H = 640, 260
L, R, T, B = 72, 16, 28, 42


def _svg(body: list[str], label: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" font-family="sans-serif" font-size="11">' + "".join(body) + "</svg>"
    )


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.4g}"


class _Axis:
    """A linear or log scale from data values to pixels, with a handful of labelled ticks."""

    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool = False, pad: float = 0.05) -> None:
        self.log = log and lo > 0
        f: Callable[[float], float] = math.log10 if self.log else float
        a, b = f(lo), f(hi)
        if a == b:
            a, b = a - 0.5, b + 0.5
        span = b - a
        self.a, self.b = a - span * pad, b + span * pad
        self.start, self.end, self.f = start, end, f

    def __call__(self, v: float) -> float:
        return self.start + (self.f(v) - self.a) / (self.b - self.a) * (self.end - self.start)

    def ticks(self, n: int = 5, integer: bool = False) -> list[float]:
        """Round values inside the axis: powers of ten on a log axis, 1/2/5 × 10^k steps on a linear one."""
        if self.log:  # decades; 2× and 5× between them when the axis spans fewer than three
            steps = (1,) if self.b - self.a >= 3 else (1, 2, 5)
            found = [m * 10.0**e for e in range(math.floor(self.a), math.ceil(self.b) + 1) for m in steps]
            return [v for v in found if self.a <= math.log10(v) <= self.b]
        raw = (self.b - self.a) / n
        base = 10.0 ** math.floor(math.log10(raw))
        step = next(m * base for m in (1, 2, 5, 10) if raw <= m * base)
        step = max(step, 1.0) if integer else step
        first = math.ceil(self.a / step)
        return [k * step for k in range(first, math.floor(self.b / step) + 1)]


def _frame_axes(
    x: _Axis | None, y: _Axis, x_title: str, y_title: str, width: int = W, height: int = H, integer_x: bool = False
) -> list[str]:
    body = []
    for v in y.ticks():
        py = y(v)
        body.append(f'<line x1="{L}" y1="{py:.1f}" x2="{width - R}" y2="{py:.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{L - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    body.append(f'<line x1="{L}" y1="{height - B}" x2="{width - R}" y2="{height - B}" stroke="{AXIS}"/>')
    if x is not None:
        for v in x.ticks(6, integer_x):
            px = x(v)
            body.append(f'<text x="{px:.1f}" y="{height - B + 16}" text-anchor="middle">{_fmt(v)}</text>')
    body.append(f'<text x="{(L + width - R) / 2:.1f}" y="{height - 8}" text-anchor="middle">{escape(x_title)}</text>')
    body.append(
        f'<text x="12" y="{(T + height - B) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(T + height - B) / 2:.1f})">{escape(y_title)}</text>'
    )
    return body


def _legend(items: Sequence[tuple[str, str]], x: float = L) -> list[str]:
    out = []
    for i, (color, text) in enumerate(items):
        xi = x + i * 150
        out.append(f'<circle cx="{xi + 5:.1f}" cy="{T - 13}" r="4" fill="{color}"/>')
        out.append(f'<text x="{xi + 13:.1f}" y="{T - 9}">{escape(text)}</text>')
    return out


def _empty(message: str, width: int = W, height: int = 80) -> str:
    body = [
        f'<rect x="1" y="1" width="{width - 2}" height="{height - 2}" fill="#f8f9fa" stroke="#dee2e6"/>',
        f'<text x="{width / 2}" y="{height / 2 + 4}" text-anchor="middle" fill="#868e96">{escape(message)}</text>',
    ]
    return _svg(body, message, width, height)


def _last(curve: dict[int, float]) -> float | None:
    return curve[max(curve)] if curve else None


def objective_svg(rows: list[dict[str, Any]], metric: str, minimize: bool) -> str:
    """Each trial's objective (pruned trials at their last epoch's value, grey) and the best-so-far line."""
    points = [(r["trial"], r["objective"], True) for r in rows if r["objective"] is not None]
    points += [(r["trial"], _last(r["curve"]), False) for r in rows if r["pruned"] and r["curve"]]
    if not points:
        return _empty("no trial has finished yet")
    values = [v for _, v, _ in points]
    x = _Axis(min(p[0] for p in points), max(p[0] for p in points), L, W - R)
    y = _Axis(min(values), max(values), H - B, T)
    body = _frame_axes(x, y, "trial", metric, integer_x=True)
    best, steps = None, []
    for r in sorted(rows, key=lambda r: r["trial"]):
        v = r["objective"]
        if v is not None and (best is None or (v < best if minimize else v > best)):
            best = v
        if best is not None:
            steps.append((x(r["trial"]), y(best)))
    if steps:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in steps)
        body.append(f'<polyline points="{path}" fill="none" stroke="{BEST}" stroke-width="2"/>')
    for trial, v, complete in sorted(points, key=lambda p: p[2]):
        style = f'fill="{COMPLETE}"' if complete else f'fill="white" stroke="{PRUNED}" stroke-width="1.5"'
        tip = f"trial {trial}: {_fmt(v)}" + ("" if complete else " (pruned)")
        body.append(f'<circle cx="{x(trial):.1f}" cy="{y(v):.1f}" r="4" {style}><title>{tip}</title></circle>')
    body += _legend([(COMPLETE, "complete trial"), (PRUNED, "pruned (last epoch)"), (BEST, "best so far")])
    return _svg(body, f"{metric} per trial")


def param_svg(rows: list[dict[str, Any]], r: Range, metric: str, best_trial: int | None) -> str:
    """One tuned hyperparameter against the objective; categorical values get a column each."""
    done = [(row[r.name], row["objective"], row["trial"]) for row in rows if row["objective"] is not None]
    width, height = W // 2 - 8, 220
    if not done:
        return _empty(f"{r.name}: no complete trial", width)
    y = _Axis(min(v for _, v, _ in done), max(v for _, v, _ in done), height - B, T)
    if r.kind == "categorical":
        slots = {v: i for i, v in enumerate(r.values)}
        x = _Axis(-0.5, len(r.values) - 0.5, L, width - R, pad=0)
        body = _frame_axes(None, y, r.name, metric, width, height)
        for value, i in slots.items():
            body.append(f'<text x="{x(i):.1f}" y="{height - B + 16}" text-anchor="middle">{escape(value)}</text>')

        def px(value: str) -> float:
            return x(slots.get(value, 0))
    else:
        x = _Axis(r.low, r.high, L, width - R, log=r.scaling == "Logarithmic")
        body = _frame_axes(x, y, r.name + (" (log)" if x.log else ""), metric, width, height)

        def px(value: str) -> float:
            return x(float(value))

    for value, v, trial in done:
        color = BEST if trial == best_trial else COMPLETE
        size = 5 if trial == best_trial else 3.5
        body.append(
            f'<circle cx="{px(value):.1f}" cy="{y(v):.1f}" r="{size}" fill="{color}" fill-opacity="0.8">'
            f"<title>trial {trial}: {escape(str(value))} → {_fmt(v)}</title></circle>"
        )
    return _svg(body, f"{r.name} against {metric}", width, height)


def importance_svg(found: dict[str, float]) -> str:
    """Horizontal bars, most important first (PED-ANOVA, normalised to sum to 1)."""
    if not found:
        return _empty("importances need at least 4 complete trials")
    items = sorted(found.items(), key=lambda kv: -kv[1])
    row_h, left = 24, 180
    height = T + row_h * len(items) + 12
    scale = (W - left - 60) / max(max(v for _, v in items), 1e-9)
    body = []
    for i, (name, v) in enumerate(items):
        y = T + i * row_h
        body.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(name)}</text>')
        body.append(f'<rect x="{left}" y="{y + 4}" width="{max(v * scale, 1):.1f}" height="14" fill="{COMPLETE}"/>')
        body.append(f'<text x="{left + v * scale + 6:.1f}" y="{y + 15}">{v:.2f}</text>')
    body.append(f'<text x="{left}" y="{T - 10}" fill="#868e96">share of the objective\'s variation explained</text>')
    return _svg(body, "hyperparameter importances", W, height)


def curves_svg(rows: list[dict[str, Any]], metric: str, best_trial: int | None) -> str:
    """Every trial's validation metric per epoch: where pruned trials stopped, and how the best one ran."""
    curves = [(r, r["curve"]) for r in rows if r["curve"]]
    if not curves:
        return _empty("no epoch has been reported yet")
    values = [v for _, c in curves for v in c.values()]
    epochs = [e for _, c in curves for e in c]
    x = _Axis(min(epochs), max(epochs), L, W - R, pad=0.02)
    y = _Axis(min(values), max(values), H - B, T)
    body = _frame_axes(x, y, "epoch", f"{metric} (per epoch)", integer_x=True)
    order = sorted(curves, key=lambda rc: (rc[0]["trial"] == best_trial, not rc[0]["pruned"]))
    for row, curve in order:
        color = BEST if row["trial"] == best_trial else (PRUNED if row["pruned"] else COMPLETE)
        width = 2.5 if row["trial"] == best_trial else 1.2
        dash = ' stroke-dasharray="3 3"' if row["pruned"] else ""
        pts = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in sorted(curve.items()))
        body.append(
            f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"{dash} '
            f'stroke-opacity="0.85"><title>trial {row["trial"]}</title></polyline>'
        )
        if row["pruned"]:  # where it was stopped
            e = max(curve)
            body.append(f'<circle cx="{x(e):.1f}" cy="{y(curve[e]):.1f}" r="3" fill="white" stroke="{color}"/>')
    body += _legend([(COMPLETE, "complete"), (PRUNED, "pruned"), (BEST, "best trial")])
    return _svg(body, "validation curves")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return _fmt(v) if isinstance(v, float) else str(v)


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#212529;max-width:1320px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.facts{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.fact{background:#f1f3f5;border-radius:6px;padding:8px 12px} .fact b{display:block;font-size:18px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #dee2e6;padding:4px 10px;text-align:left}
.note{color:#868e96;font-size:13px}
"""


def render_report(
    summary: dict[str, Any], rows: list[dict[str, Any]], found: dict[str, float], spec: TuningSpec
) -> str:
    """The whole page; every name and value from the study is escaped."""
    metric, minimize = spec.metric, spec.direction == "minimize"
    best = summary.get("best")
    best_trial = best["trial"] if best else None
    counts = summary["trials"]
    facts = [
        ("best " + metric, _fmt(best["objective"]) if best else "none yet"),
        ("best trial", str(best_trial) if best else "-"),
        ("trials", f"{sum(counts.values())} of {summary['max_trials']}"),
        ("complete / pruned / failed", f"{counts['complete']} / {counts['pruned']} / {counts['failed']}"),
        ("strategy", f"{spec.strategy}, early stopping {spec.early_stopping}"),
        ("training time, all trials", f"{summary['seconds']:.0f} s"),
    ]
    fact_html = "".join(f'<div class="fact">{escape(k)}<b>{escape(v)}</b></div>' for k, v in facts)
    params = "".join(param_svg(rows, r, metric, best_trial) for r in spec.ranges)
    tuned = [{"hyperparameter": k, "value": v} for k, v in (best["tuned"] if best else {}).items()]
    ranked = sorted((r for r in rows if r["objective"] is not None), key=lambda r: r["objective"], reverse=not minimize)
    columns = ["trial", "objective", "epochs_run", "best_epoch", "seconds", *spec.names]
    pruned_rows = [r for r in rows if r["state"] != "complete"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>o2v tune: {escape(summary['study'])}</title><style>{STYLE}</style></head><body>"
        f"<h1>o2v tune: {escape(summary['study'])}</h1>"
        f"<div class='note'>objective {escape(metric)} ({escape(spec.direction)}); "
        f"one point per SageMaker training job</div>"
        f"<div class='facts'>{fact_html}</div>"
        f"<h2>Objective per trial</h2>{objective_svg(rows, metric, minimize)}"
        f"<h2>Each hyperparameter against the objective</h2><div class='grid'>{params}</div>"
        f"<h2>Importances</h2>{importance_svg(found)}"
        f"<h2>Validation per epoch</h2>{curves_svg(rows, metric, best_trial)}"
        f"<h2>Best hyperparameters</h2>{_table(tuned, ['hyperparameter', 'value'])}"
        f"<h2>Trials, best first</h2>{_table(ranked[:15], columns)}"
        + (
            f"<h2>Pruned, failed or interrupted</h2>{_table(pruned_rows, ['trial', 'state', 'epochs_run', 'error'])}"
            if pruned_rows
            else ""
        )
        + "</body></html>"
    )
