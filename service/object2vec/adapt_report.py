"""report.html of an adaptation job, in the tuning report's style (inline SVG, no JavaScript, no network).

What a team reads before it promotes: the parent against the adapted model on the held-out split (kNN accuracy;
the calibrated min_score with out-of-scope recall and precision when the data has out-of-scope items; STS-B dev
Spearman as the generic guard), the per-epoch losses and validation metric, the tuning trials when the job tuned,
and the lineage (parent, data hash, hyperparameters). Rendered from the job's result alone, so it is the same
numbers: every metric cell carries `data-key` ("parent.knn_accuracy", ...) and the value as the result holds it.
"""

from __future__ import annotations

from html import escape
from typing import Any

from service.object2vec.tuning_report import (
    BEST,
    COMPLETE,
    STYLE,
    B,
    H,
    L,
    R,
    T,
    W,
    _Axis,
    _empty,
    _fmt,
    _frame_axes,
    _legend,
    _svg,
    _table,
    curves_svg,
    objective_svg,
)

METRICS = (
    ("knn_accuracy", "kNN accuracy (k=10, in scope)"),
    ("min_score", "calibrated min_score"),
    ("accuracy_at_min_score", "in-scope accuracy at min_score"),
    ("oos_recall", "out-of-scope recall at min_score"),
    ("oos_precision", "out-of-scope precision at min_score"),
    ("spearman_cosine", "held-out pairs: Spearman of the cosine"),
)
"""The held-out metrics a result may hold, in the order shown; absent ones are left out (no out-of-scope label:
no min_score rows; pairs: Spearman only)."""


def number(value: Any) -> str:
    """A metric exactly as the result holds it (rounded there: 4 places for metrics, 6 for losses), so the page
    and the JSON agree to the last digit."""
    return "" if value is None else escape(str(value))


def _cell(key: str, value: Any) -> str:
    return f'<td data-key="{escape(key)}">{number(value)}</td>'


def _change(before: Any, after: Any) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return "<td></td>"
    delta = round(after - before, 4)
    color = "#2b8a3e" if delta > 0 else "#c92a2a" if delta < 0 else "#495057"
    return f'<td style="color:{color}">{delta:+.4f}</td>'


def comparison_table(evaluation: dict[str, Any]) -> str:
    """Metric | parent | adapted | change, on the held-out split, then the STS-B dev guard."""
    parent, adapted = evaluation.get("parent") or {}, evaluation.get("adapted") or {}
    rows = []
    for key, label in METRICS:
        if key in parent or key in adapted:
            before, after = parent.get(key), adapted.get(key)
            rows.append(
                f"<tr><td>{escape(label)}</td>{_cell('parent.' + key, before)}{_cell('adapted.' + key, after)}"
                f"{_change(before, after)}</tr>"
            )
    guard = evaluation.get("sts_dev_spearman") or {}
    if "skipped" in guard:
        rows.append(
            f"<tr><td>STS-B dev Spearman (generic guard)</td><td colspan='3'>{escape(guard['skipped'])}</td></tr>"
        )
    else:
        rows.append(
            "<tr><td>STS-B dev Spearman (generic guard)</td>"
            f"{_cell('sts.parent', guard.get('parent'))}{_cell('sts.adapted', guard.get('adapted'))}"
            f"{_change(guard.get('parent'), guard.get('adapted'))}</tr>"
        )
    head = "<tr><th>metric</th><th>parent</th><th>adapted</th><th>change</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def epochs_svg(history: list[dict[str, Any]], parent_value: float | None, metric: str, best_epoch: int) -> str:
    """The held-out metric per epoch (epoch 0: the parent) with the kept epoch marked, and the train loss."""
    points = [(0, parent_value)] if parent_value is not None else []
    points += [(r["epoch"], r["validation"].get(metric)) for r in history]
    points = [(e, float(v)) for e, v in points if v is not None]
    if not points:
        return _empty("no epoch has been reported")
    x = _Axis(0, max(e for e, _ in points), L, W - R, pad=0.03)
    y = _Axis(min(v for _, v in points), max(v for _, v in points), H - B, T)
    body = _frame_axes(x, y, "epoch (0: the parent)", f"held-out {metric}", integer_x=True)
    path = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in points)
    body.append(f'<polyline points="{path}" fill="none" stroke="{COMPLETE}" stroke-width="2"/>')
    for e, v in points:
        kept = e == best_epoch
        color = BEST if kept else COMPLETE
        tip = f"epoch {e}: {_fmt(v)}" + (" (kept)" if kept else "")
        size = 5 if kept else 3.5
        body.append(f'<circle cx="{x(e):.1f}" cy="{y(v):.1f}" r="{size}" fill="{color}"><title>{tip}</title></circle>')
    body += _legend([(COMPLETE, f"held-out {metric}"), (BEST, "kept epoch")])
    return _svg(body, f"held-out {metric} per epoch")


def loss_svg(history: list[dict[str, Any]]) -> str:
    points = [(r["epoch"], float(r["train_loss"])) for r in history if r.get("train_loss") is not None]
    if not points:
        return _empty("no epoch has been trained")
    x = _Axis(min(e for e, _ in points), max(e for e, _ in points), L, W - R, pad=0.03)
    y = _Axis(min(v for _, v in points), max(v for _, v in points), H - B, T)
    body = _frame_axes(x, y, "epoch", "train loss", integer_x=True)
    body.append(
        '<polyline points="' + " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in points) + f'" fill="none" '
        f'stroke="{COMPLETE}" stroke-width="2"/>'
    )
    return _svg(body, "train loss per epoch")


def epoch_table(history: list[dict[str, Any]], parent_eval: dict[str, Any], best_epoch: int) -> str:
    keys = [k for k, _ in METRICS if any(k in r["validation"] for r in history) or k in parent_eval]
    head = "".join(f"<th>{escape(c)}</th>" for c in ("epoch", "train loss", "pairs", *keys, "seconds"))
    rows = [
        "<tr><td>0 (parent)</td><td></td><td></td>"
        + "".join(_cell(f"epoch0.{k}", parent_eval.get(k)) for k in keys)
        + "<td></td></tr>"
    ]
    for r in history:
        e = r["epoch"]
        mark = " (kept)" if e == best_epoch else ""
        cells = "".join(_cell(f"epoch{e}.{k}", r["validation"].get(k)) for k in keys)
        rows.append(
            f"<tr><td>{e}{mark}</td>{_cell(f'epoch{e}.train_loss', r.get('train_loss'))}<td>{r.get('pairs', '')}</td>"
            f"{cells}<td>{number(r.get('seconds'))}</td></tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def tuning_section(tuning: dict[str, Any] | None) -> str:
    """The trials of a tuned job: objective per trial, each trial's curve, and the table (best first)."""
    if not tuning:
        return ""
    metric = tuning["objective"]
    rows = [
        {**r, "pruned": r["state"] == "pruned", "curve": {int(k): v for k, v in (r.get("curve") or {}).items()}}
        for r in tuning["rows"]
    ]
    searched = tuning.get("searched", [])
    flat = [{**r, **r.get("hyperparameters", {})} for r in rows]
    ranked = sorted(flat, key=lambda r: (r["objective"] is None, -(r["objective"] or 0.0)))
    columns = ["trial", "state", "objective", "epochs_run", "best_epoch", "seconds", *searched]
    return (
        f"<h2>Tuning: {len(rows)} trials, best trial {tuning['best_trial']}</h2>"
        f"<div class='note'>{escape(tuning['strategy'])}; objective {escape(metric)} on the held-out split; "
        f"searched: {escape(', '.join(searched) or 'nothing (the request set them all)')}</div>"
        f"{objective_svg(rows, metric, minimize=False)}{curves_svg(rows, metric, tuning['best_trial'])}"
        f"{_table(ranked, columns)}"
    )


def lineage_table(result: dict[str, Any]) -> str:
    lineage = result.get("lineage") or {}
    data = lineage.get("data") or {}
    held = lineage.get("held_out") or {}
    facts = [
        ("parent", lineage.get("parent")),
        ("data source", data.get("source")),
        ("data sha256", data.get("sha256")),
        ("items", data.get("items")),
        ("labels", data.get("labels")),
        ("out-of-scope label", data.get("oos_label")),
        ("held-out items", held.get("items")),
        ("held-out sha256", held.get("sha256")),
        (
            "hyperparameters given",
            ", ".join(f"{k}={v}" for k, v in (lineage.get("hyperparameters_given") or {}).items()),
        ),
        ("local options", ", ".join(f"{k}={v}" for k, v in (lineage.get("local_options") or {}).items())),
    ]
    facts += [(f"parent file {name}", digest) for name, digest in (lineage.get("parent_files") or {}).items()]
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape('' if v is None else str(v))}</td></tr>" for k, v in facts)
    hp = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in sorted(result["hyperparameters"].items())
    )
    return (
        f"<table><tbody>{body}</tbody></table><h2>Hyperparameters (SageMaker names)</h2>"
        f"<table><tbody>{hp}</tbody></table>"
    )


def render_adapt_report(result: dict[str, Any]) -> str:
    """The whole page from the job's result (result.json); every text from the request is escaped."""
    evaluation = result["evaluation"]
    parent, adapted = evaluation.get("parent") or {}, evaluation.get("adapted") or {}
    metric = "knn_accuracy" if "knn_accuracy" in adapted else "spearman_cosine"
    history = result.get("history") or []
    name, parent_name = str(result["model"]), str((result.get("lineage") or {}).get("parent", ""))
    facts = [
        (f"held-out {metric}", f"{number(parent.get(metric))} → {number(adapted.get(metric))}"),
        ("held-out items", str(evaluation.get("held_out_items", ""))),
        ("kept epoch", f"{result['best_epoch']} of {result['epochs_run']}"),
        ("stopped early", f"epoch {result['stopped_early']}" if result.get("stopped_early") else "no"),
        ("training time", f"{result['train_seconds']:.0f} s"),
    ]
    if "oos_recall" in adapted:
        facts.insert(
            1,
            (
                "out-of-scope recall / precision",
                f"{number(adapted['oos_recall'])} / {number(adapted['oos_precision'])}",
            ),
        )
    fact_html = "".join(f'<div class="fact">{escape(k)}<b>{escape(v)}</b></div>' for k, v in facts)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>o2v adapt: {escape(name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>o2v adapt: {escape(name)}</h1>"
        f"<div class='note'>{escape(name)} fine-tuned from {escape(parent_name)}, compared with it on the "
        f"held-out split of the team's data ({evaluation.get('held_out_items', '?')} items, never trained on)</div>"
        f"<div class='facts'>{fact_html}</div>"
        f"<h2>Parent against adapted, held-out split</h2>{comparison_table(evaluation)}"
        f"<h2>Held-out {escape(metric)} per epoch</h2>"
        f"{epochs_svg(history, parent.get(metric), metric, result['best_epoch'])}"
        f"<h2>Train loss per epoch</h2>{loss_svg(history)}"
        f"<h2>Epochs</h2>{epoch_table(history, parent, result['best_epoch'])}"
        f"{tuning_section(result.get('tuning'))}"
        f"<h2>Lineage</h2>{lineage_table(result)}"
        "</body></html>"
    )
