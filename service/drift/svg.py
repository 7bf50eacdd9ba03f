"""Small inline SVG charts for the drift report, drawn by hand: no JavaScript, no network, no plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

BASELINE_COLOR = "#7b8794"
LIVE_COLOR = "#d9480f"
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 28, 40


def _frame(body: list[str], label: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" font-family="sans-serif" font-size="11">' + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`: 1, 2 or 5 times a power of ten."""
    base = 10.0 ** math.floor(math.log10(max(value, 1e-9)))
    return next(m * base for m in (1, 2, 5, 10) if value <= m * base)


def _legend(x: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (color, text) in enumerate(items):
        y = TOP - 14
        xi = x + i * 120
        out.append(f'<rect x="{xi:.1f}" y="{y}" width="12" height="10" fill="{color}" fill-opacity="0.6"/>')
        out.append(f'<text x="{xi + 16:.1f}" y="{y + 9}">{escape(text)}</text>')
    return out


def _y_axis(y_max: float, plot_h: float, fmt: str) -> list[str]:
    out = []
    for i in range(5):
        v = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{format(v, fmt)}</text>')
    return out


def histogram_svg(
    edges: Sequence[float],
    baseline: Sequence[float],
    live: Sequence[float],
    marks: Sequence[tuple[float, str]] = (),
    label: str = "baseline vs live",
) -> str:
    """Baseline bars in grey, live bars in orange on the same bins (fractions of each sample), means as dashes."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    lo, hi = edges[0], edges[-1]
    y_max = _nice_max(max([*baseline, *live, 1e-9]))

    def x(v: float) -> float:
        return LEFT + (v - lo) / (hi - lo) * plot_w

    def y(frac: float) -> float:
        return TOP + plot_h - frac / y_max * plot_h

    body = _y_axis(y_max, plot_h, ".0%" if y_max >= 0.1 else ".1%")
    for series, color, inset in ((baseline, BASELINE_COLOR, 0.0), (live, LIVE_COLOR, 0.22)):
        for i, frac in enumerate(series):
            if frac <= 0:
                continue
            x0, x1 = x(edges[i]), x(edges[i + 1])
            w = (x1 - x0) * (1 - inset)
            body.append(
                f'<rect x="{x0 + (x1 - x0) * inset / 2:.1f}" y="{y(frac):.1f}" width="{max(w - 1, 0.5):.1f}" '
                f'height="{TOP + plot_h - y(frac):.1f}" fill="{color}" fill-opacity="{0.55 if inset else 0.45}"/>'
            )
    for value, color in marks:
        if lo <= value <= hi:
            body.append(
                f'<line x1="{x(value):.1f}" y1="{TOP}" x2="{x(value):.1f}" y2="{TOP + plot_h}" stroke="{color}" '
                f'stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
    base_y = TOP + plot_h
    body.append(f'<line x1="{LEFT}" y1="{base_y}" x2="{WIDTH - RIGHT}" y2="{base_y}" stroke="#3e4c59"/>')
    for i in range(7):
        v = lo + (hi - lo) * i / 6
        body.append(f'<line x1="{x(v):.1f}" y1="{base_y}" x2="{x(v):.1f}" y2="{base_y + 4}" stroke="#3e4c59"/>')
        body.append(f'<text x="{x(v):.1f}" y="{base_y + 16}" text-anchor="middle">{v:.2f}</text>')
    body.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">score</text>')
    body += _legend(LEFT + 4, [(BASELINE_COLOR, "baseline"), (LIVE_COLOR, "live window")])
    return _frame(body, label)


def line_svg(values: Sequence[float], reference: float | None, label: str, height: int = 140) -> str:
    """One point per history bucket joined by a line, with the baseline mean as a dashed reference."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - 24
    every = [*values, *([reference] if reference is not None else [])]
    lo, hi = min(every), max(every)
    pad = max((hi - lo) * 0.1, 0.01)
    lo, hi = lo - pad, hi + pad

    def y(v: float) -> float:
        return TOP + plot_h - (v - lo) / (hi - lo) * plot_h

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (len(values) - 1) if len(values) > 1 else plot_w / 2)

    body = [
        f'<text x="{LEFT - 6}" y="{y(hi - pad) + 4:.1f}" text-anchor="end">{hi - pad:.3f}</text>',
        f'<text x="{LEFT - 6}" y="{y(lo + pad) + 4:.1f}" text-anchor="end">{lo + pad:.3f}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#3e4c59"/>',
    ]
    if reference is not None:
        body.append(
            f'<line x1="{LEFT}" y1="{y(reference):.1f}" x2="{WIDTH - RIGHT}" y2="{y(reference):.1f}" '
            f'stroke="{BASELINE_COLOR}" stroke-dasharray="4 3"/>'
        )
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    body.append(f'<polyline points="{points}" fill="none" stroke="{LIVE_COLOR}" stroke-width="1.5"/>')
    body += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" fill="{LIVE_COLOR}"/>' for i, v in enumerate(values)]
    body += _legend(LEFT + 4, [(BASELINE_COLOR, "baseline mean"), (LIVE_COLOR, "live mean per bucket")])
    return _frame(body, label, height=height)


def empty_svg(message: str) -> str:
    body = [
        f'<rect x="1" y="1" width="{WIDTH - 2}" height="{HEIGHT - 2}" fill="#f5f7fa" stroke="#cbd2d9"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#616e7c">{escape(message)}</text>',
    ]
    return _frame(body, message)
