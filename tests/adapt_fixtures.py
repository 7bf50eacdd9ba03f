"""Tiny labelled intent data the adaptation tests write for themselves: a few labels, a few utterances each."""

from __future__ import annotations

from service.model.labelled import Labelled

INTENTS: dict[str, list[str]] = {
    "weather": [
        "what is the weather like today",
        "will it rain tomorrow",
        "is it going to be sunny this weekend",
        "how cold is it outside",
        "do i need an umbrella today",
        "what's the forecast for monday",
    ],
    "balance": [
        "how much money is in my account",
        "what is my checking balance",
        "tell me my savings balance",
        "how much do i have in the bank",
        "show my account balance",
        "what's left in my checking account",
    ],
    "alarm": [
        "set an alarm for seven am",
        "wake me up at six tomorrow",
        "please set my alarm for noon",
        "i need an alarm at five thirty",
        "create an alarm for eight in the morning",
        "alarm for nine pm please",
    ],
}
OUT_OF_SCOPE = ["who painted the mona lisa", "how tall is mount everest", "tell me a joke about cats"]


def intents(oos: bool = False) -> Labelled:
    texts = [t for ts in INTENTS.values() for t in ts]
    labels = [label for label, ts in INTENTS.items() for _ in ts]
    if oos:
        texts += OUT_OF_SCOPE
        labels += ["oos"] * len(OUT_OF_SCOPE)
    return Labelled(texts, labels, "oos" if oos else None)
