"""What to do about a status, in Object2Vec's own terms (its regularisers are dropout, weight_decay, early stopping)."""

from __future__ import annotations

from typing import Any

STREAM_MEANING = {
    "similarity": "pair cosines from /similarity",
    "search_top1": "best-hit scores of searches",
    "classify_confidence": "kNN classification confidences",
}

REMEDY = (
    "Object2Vec's remedies for a model that does not generalise: retrain with a higher `dropout` (0.2-0.5), "
    "a `weight_decay` (e.g. 0.01-0.1), early stopping on the validation channel (`early_stopping_patience` 2-3, "
    "`early_stopping_tolerance` 0.01), and more varied training pairs, including pairs from the live domain; "
    "then re-seed this baseline from the new model's validation scores (PUT /drift/baseline/{stream})."
)


def _trained_with(hyperparameters: dict[str, Any]) -> str:
    names = ("dropout", "weight_decay", "early_stopping_patience", "early_stopping_tolerance", "epochs")
    shown = [f"{n}={hyperparameters[n]}" for n in names if n in hyperparameters]
    return f" The served model was trained with {', '.join(shown)}." if shown else ""


def advice(stream: str, status: str, baseline_mean: float | None, live_mean: float | None, card: dict[str, Any]) -> str:
    """One paragraph for GET /drift, the report and the webhook."""
    what = STREAM_MEANING.get(stream, f"scores of stream '{stream}'")
    if status == "pending":
        return f"No verdict yet: waiting for enough live {what} (and a baseline)."
    if status == "ok":
        return f"Live {what} match the baseline distribution."
    direction = ""
    if baseline_mean is not None and live_mean is not None:
        trend = "higher" if live_mean > baseline_mean else "lower"
        direction = f" The live mean is {trend} ({live_mean:.3f} vs {baseline_mean:.3f})."
    if status == "warning":
        return (
            f"Live {what} are starting to differ from the baseline.{direction} Watch the trend; if it becomes "
            f"drift, look at what traffic changed before retraining."
        )
    trained = _trained_with(card.get("hyperparameters") or {})
    return (
        f"Live {what} are distributed differently from the baseline: the model meets inputs its "
        f"validation set did not represent, or it overfit its training domain.{direction}{trained} {REMEDY}"
    )
