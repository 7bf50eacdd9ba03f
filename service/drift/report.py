"""The GET /drift/report page: per stream a status badge, baseline-vs-live histogram, statistics and advice."""

from __future__ import annotations

from html import escape
from typing import Any

from service.drift.svg import BASELINE_COLOR, LIVE_COLOR, empty_svg, histogram_svg, line_svg

STATUS_COLOR = {"ok": "#2f9e44", "warning": "#f08c00", "drift": "#e03131", "pending": "#868e96"}
TEST_NAMES = {
    "ks_pvalue": "KS p-value",
    "linf": "L∞ = KS statistic",
    "linf_robust": "L∞ robust (SageMaker)",
    "psi": "PSI",
    "js": "Jensen-Shannon",
    "wasserstein": "Wasserstein",
    "wasserstein_norm": "Wasserstein / σ",
    "shift_z": "shift test z (recent window; |z| vs simulated limits)",
}
CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2933;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:0}
section{border:1px solid #d9e2ec;border-radius:8px;padding:16px;margin:16px 0}
.head{display:flex;align-items:center;gap:12px;margin-bottom:8px}
.badge{color:#fff;border-radius:12px;padding:2px 10px;font-weight:600;font-size:13px}
.meta{color:#52606d;font-size:13px}
.cols{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 8px;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left} .hit{color:#e03131;font-weight:600} .near{color:#e8590c}
h3{font-size:15px;margin:0} .panel{margin-top:10px}
p.advice{background:#f5f7fa;border-left:4px solid #9aa5b1;padding:8px 12px;font-size:14px}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else escape(str(value))


def _statistics_table(s: dict[str, Any]) -> str:
    stats = s["statistics"]
    if not stats:
        why = "no baseline yet" if s["baseline"] is None else f"fewer than {s['min_samples']} live scores"
        return f'<p class="meta">No statistics: {why}.</p>'
    return _table(stats)


def _table(stats: dict[str, Any]) -> str:
    rows = []
    for name, entry in stats.items():
        value, warn, drift = entry["value"], entry.get("warning"), entry.get("drift")
        cls = {"drift": ' class="hit"', "warning": ' class="near"'}.get(entry.get("crossed") or "", "")
        rows.append(
            f"<tr><td>{escape(TEST_NAMES.get(name, name))}</td><td{cls}>{_fmt(value)}</td>"
            f"<td>{_fmt(warn)}</td><td>{_fmt(drift)}</td></tr>"
        )
    head = "<tr><th>test</th><th>value</th><th>warning</th><th>drift</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _summary_table(baseline: dict[str, Any] | None, live: dict[str, Any]) -> str:
    b = baseline or {}
    keys = [("n", "n"), ("mean", "mean"), ("std", "std")]
    keys += [(f"q{q}", q) for q in ("0.05", "0.25", "0.5", "0.75", "0.95")]

    def get(d: dict[str, Any], key: str) -> Any:
        return d.get("quantiles", {}).get(key) if key.startswith("0.") else d.get(key)

    rows = "".join(
        f"<tr><td>{label}</td><td>{_fmt(get(b, k))}</td><td>{_fmt(get(live, k))}</td></tr>" for label, k in keys
    )
    return f"<table><tr><th></th><th>baseline</th><th>live</th></tr>{rows}</table>"


def _domain_panel(s: dict[str, Any]) -> str:
    """The same live window against the model card's validation scores, when the stream's baseline is another."""
    d = s.get("domain")
    if not d:
        return ""
    status = d["status"]
    return f"""<div class="panel domain"><div class="head"><h3>vs the validation domain (model card)</h3>
<span class="badge" style="background:{STATUS_COLOR.get(status, "#868e96")}">{escape(status)}</span>
<span class="meta">raw level, no hysteresis · {escape(d["baseline"]["source"])} · n {d["baseline"]["n"]}</span></div>
{_table(d["statistics"])}</div>"""


def _shift_panel(s: dict[str, Any]) -> str:
    """The shift test's z against its limits: the signal that finds a small mean shift after normal traffic."""
    entry = s["statistics"].get("shift_z")
    if entry is None:
        return ""
    z, warn, drift = entry["value"], entry["warning"], entry["drift"]
    side = "higher" if z > 0 else "lower"
    settled = s.get("n_settled", 0)
    return f"""<div class="panel shift"><h3>shift test</h3><p class="meta">recent window z = {z:.3g}
({side} than the reference) · |z| limits {warn:.3g} (warning) / {drift:.3g} (drift), simulated from the baseline for
the configured share of normal runs · reference: {s["n_baseline"]} baseline scores + {settled} live scores from checks
that found no shift</p></div>"""


def _labels_panel(s: dict[str, Any], top: int = 10) -> str:
    """Classify's labels, the most moved first: share of the answers and mean confidence, reference vs live."""
    doc = s.get("labels")
    if doc is None:
        return ""
    head = (
        f'<div class="panel labels"><h3>labels (reference: {escape(doc["reference"]["source"])}, '
        f"{doc['reference']['n']} answers; live {doc['n_live']})</h3>"
    )
    if not doc["labels"]:
        return head + '<p class="meta">Not ranked yet: the reference or the live answers are still filling.</p></div>'
    rows = "".join(
        f"<tr><td>{escape(r['label'])}</td><td>{_fmt(r['share_reference'])}</td><td>{_fmt(r['share_live'])}</td>"
        f"<td>{_fmt(r['confidence_reference'])}</td><td>{_fmt(r['confidence_live'])}</td>"
        f"<td{' class=hit' if r['moved'] else ''}>{_fmt(r['pvalue'])}</td></tr>"
        for r in doc["labels"][:top]
    )
    cols = "<tr><th>label</th><th>share ref</th><th>share live</th><th>conf ref</th><th>conf live</th><th>p</th></tr>"
    return f"{head}<table>{cols}{rows}</table></div>"


def _stream_section(name: str, s: dict[str, Any]) -> str:
    status = s["status"]
    hist = s.get("histogram")
    baseline, live = s.get("baseline"), s["live"]
    if hist and baseline and s["n_live"]:
        marks = [(baseline["mean"], BASELINE_COLOR), (live["mean"], LIVE_COLOR)]
        chart = histogram_svg(hist["edges"], hist["baseline"], hist["live"], marks, f"{name}: baseline vs live")
    elif hist:
        chart = histogram_svg(hist["edges"], hist["baseline"], [0.0] * len(hist["baseline"]), label=name)
    else:
        chart = empty_svg(f"{name}: no baseline yet ({s['n_live']} live scores)")
    history = s.get("history") or []
    trend = ""
    if len(history) >= 2:
        ref = baseline["mean"] if baseline else None
        trend = line_svg([b["mean"] for b in history], ref, f"{name}: mean per bucket")
        trend = f"<div><div class='meta'>{history[0]['start']} → {history[-1]['start']}</div>{trend}</div>"
    source = f"{escape(baseline['kind'])}: {escape(baseline['source'])}" if baseline else "none yet"
    return f"""<section id="{escape(name)}">
<div class="head"><h2>{escape(name)}</h2>
<span class="badge" style="background:{STATUS_COLOR.get(status, "#868e96")}">{escape(status)}</span>
<span class="meta">raw: {escape(s["raw_status"])} · live {s["n_live"]} (of {s["n_total"]} recorded)
 · baseline {s["n_baseline"]} ({source}) · since {_fmt(s.get("changed_at"))}</span></div>
<div class="cols"><div>{chart}</div><div>{_statistics_table(s)}<br>{_summary_table(baseline, live)}</div>
{trend}</div>
{_shift_panel(s)}{_domain_panel(s)}{_labels_panel(s)}
<p class="advice">{escape(s["advice"])}</p>
</section>"""


def _embeddings_section(doc: dict[str, Any] | None) -> str:
    """One row per route family: live embeddings vs its own reference (MMD permutation test), and its domain
    verdict against the model dir's validation sample."""
    if not doc:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td><span class='badge' style='background:"
        f"{STATUS_COLOR.get(f['status'], '#868e96')}'>{escape(f['status'])}</span></td><td>{f['n_live']}</td>"
        f"<td>{_fmt(f.get('mmd2'))}</td><td>{_fmt(f.get('pvalue'))}</td>"
        f"<td>{_fmt((f.get('reference') or {}).get('kind', 'learning'))}</td>"
        f"<td>{_fmt((f.get('domain') or {}).get('status'))}</td></tr>"
        for name, f in doc["families"].items()
    )
    ref = doc["reference"]
    return f"""<section id="embeddings" class="panel embeddings"><div class="head"><h2>embeddings</h2>
<span class="meta">{escape(doc["test"])} · domain reference {ref["n"]} validation embeddings
({escape(ref["source"])}) · p warning {_fmt(doc["thresholds"]["warning"])}, drift {_fmt(doc["thresholds"]["drift"])}
</span></div><table><tr><th>route family</th><th>status</th><th>live</th><th>MMD²</th><th>p</th><th>reference</th>
<th>vs validation domain</th></tr>{rows}</table></section>"""


def render_html(doc: dict[str, Any]) -> str:
    """The whole page from a GET /drift document (monitor.report())."""
    cfg = doc["config"]
    sections = "".join(_stream_section(name, s) for name, s in doc["streams"].items())
    meta = (
        f"model {_fmt(doc.get('model'))} · generated {_fmt(doc['generated_at'])} · window {cfg['window']} · "
        f"verdict from {cfg['min_samples']} live scores · check every {cfg['check_every']} · "
        f"raise after {cfg['confirm_checks']}, lower after {cfg['clear_checks']} checks · "
        f"hysteresis {cfg['hysteresis']}"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><h1>Drift report</h1><div class="meta">{meta}</div>
<p class="meta">Drift = KS p-value below its threshold and at least one distance (L∞, PSI, Jensen-Shannon,
Wasserstein/σ) above its own, or the shift test's |z| past its simulated limit; warning = the same at the warning
thresholds. Baseline {escape(cfg.get("baseline", "card"))}.</p>
{sections}
{_embeddings_section(doc.get("embeddings"))}
</body></html>
"""
