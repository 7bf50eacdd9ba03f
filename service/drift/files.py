"""Reading a baseline from a file: the PUT /drift/baseline body as JSON, JSON Lines, or one number per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_baseline_file(path: str | Path) -> dict[str, Any]:
    """A PUT /drift/baseline body: `{"scores": [...]}` or `{"pairs": [[a, b, label?], ...]}`.

    Accepted files: that JSON object or a bare JSON list of numbers; JSON Lines with a `score` or `label` field per
    line (Object2Vec's `label`), or with `in0`/`in1` texts (pairs); plain text with one number per line.
    """
    text = Path(path).read_text()
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            body = _loads(text)
        except json.JSONDecodeError:
            body = None  # JSON Lines also starts with "{"
        if isinstance(body, list):
            return {"scores": body}
        if isinstance(body, dict) and ("scores" in body or "pairs" in body):
            return body
        if body is None:
            return _from_json_lines(text)
        raise ValueError(f"{path}: expected an object with 'scores' or 'pairs', or a list of numbers")
    try:
        return {"scores": [float(line) for line in text.split() if line]}
    except ValueError as exc:
        raise ValueError(f"{path}: expected one number per line ({exc})") from None


def _loads(text: str) -> Any:
    """json.loads, with JSON nested too deep for it as the ValueError the CLI reports (not a RecursionError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the file's JSON is nested too deep") from None


def _from_json_lines(text: str) -> dict[str, Any]:
    rows = [_loads(line) for line in text.splitlines() if line.strip()]
    if all(isinstance(r.get("in0"), str) and isinstance(r.get("in1"), str) for r in rows):
        return {"pairs": [[r["in0"], r["in1"], *([r["label"]] if "label" in r else [])] for r in rows]}
    key = "score" if all("score" in r for r in rows) else "label"
    if not all(key in r for r in rows):
        raise ValueError("JSON Lines need a 'score' or 'label' on every line, or 'in0'/'in1' texts")
    return {"scores": [float(r[key]) for r in rows]}
