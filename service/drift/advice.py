"""What to do about a status, in Object2Vec's own terms (its regularisers are dropout, weight_decay, early stopping)."""

from __future__ import annotations

from typing import Any

from service.drift.streams import CLASSIFY_CONFIDENCE, SEARCH_TOP1, SIMILARITY, TRUNCATED, UNK_RATE, UNSEEN_TOKEN_RATE

STREAM_MEANING = {
    SIMILARITY: "pair cosines from /similarity",
    SEARCH_TOP1: "best-hit scores of searches",
    CLASSIFY_CONFIDENCE: "kNN classification confidences",
    UNSEEN_TOKEN_RATE: "shares of tokens per text whose rows training never updated",
    UNK_RATE: "shares of [UNK] tokens per text",
    TRUNCATED: "shares of texts cut at max_seq_len",
}
VOCABULARY = (
    "The texts carry tokens the model did not learn (another language or script, new names, longer texts than it "
    "reads): it cannot place them, whatever the scores say yet. Export them (`o2v drift export --stream "
    "unseen_token_rate`, with O2V_DRIFT_KEEP_TEXTS) and add pairs of such texts to the training data; for cut "
    "texts, a larger `enc0_max_seq_len`."
)

DOMAIN = (
    "your traffic differs from the validation domain (STS-style pairs); score levels there need not match. Judge "
    "the model on this stream's own (learned or uploaded) baseline."
)

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


def advice(
    stream: str,
    status: str,
    baseline: dict[str, Any] | None,
    live_mean: float | None,
    card: dict[str, Any],
    domain: str | None = None,
) -> str:
    """One paragraph for GET /drift, the report and the webhook.

    `baseline` is the described baseline (its `kind`: card, learned, uploaded); `domain` the raw level of the same
    window against the model card's validation scores when the baseline is another. Together they tell "your
    traffic is not the validation domain" (card differs, own baseline stable) from "the model stopped generalizing"
    (the scores moved away from what this stream's own traffic gave).
    """
    what = STREAM_MEANING.get(stream, f"scores of stream '{stream}'")
    kind = (baseline or {}).get("kind")
    off_domain = domain in ("warning", "drift")
    if status == "pending":
        waiting = f"No verdict yet: waiting for enough live {what} (and a baseline)."
        if off_domain:
            waiting += f" Against the model card's validation scores they already look different ({domain}): {DOMAIN}"
        return waiting
    if status == "ok":
        if off_domain:
            return (
                f"Live {what} are stable against this stream's {kind} baseline, but differ from the model card's "
                f"validation scores ({domain}): {DOMAIN} This is not a generalization failure by itself."
            )
        return f"Live {what} match the baseline distribution."
    direction = ""
    base_mean = (baseline or {}).get("mean")
    if base_mean is not None and live_mean is not None:
        trend = "higher" if live_mean > base_mean else "lower"
        direction = f" The live mean is {trend} ({live_mean:.3f} vs {base_mean:.3f})."
    if status == "warning":
        return (
            f"Live {what} are starting to differ from the baseline.{direction} Watch the trend; if it becomes "
            f"drift, look at what traffic changed before retraining."
        )
    if kind == "model":  # the token streams, against the validation texts' rates
        return f"Live {what} rose above the validation texts'.{direction} {VOCABULARY}"
    trained = _trained_with(card.get("hyperparameters") or {})
    if kind == "learned":
        return (
            f"Live {what} moved away from what this stream's own first traffic gave: the inputs changed since, and "
            f"the model scores them differently, which is how a model that stopped generalizing shows.{direction}"
            f"{trained} {REMEDY}"
        )
    return (
        f"Live {what} are distributed differently from the baseline: the model meets inputs its "
        f"validation set did not represent, or it overfit its training domain.{direction}{trained} {REMEDY}"
    )
