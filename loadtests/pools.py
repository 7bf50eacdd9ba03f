"""Text pools for the load test: what the runner loads into collections and what the locust users send.

By default the pools are the small project-written texts below, so a load test needs nothing outside the repository.
Given the shared data folder they are the public datasets read in place (service/datasets.py): CLINC150 train
utterances as the intents collection and its validation split (out-of-scope included) as chatbot queries, the
3,000 review sentences as the reviews collection and as search queries, STS-B dev pairs for the pair scorer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INTENTS: dict[str, list[str]] = {
    "balance": [
        "what is my account balance",
        "how much money do I have in checking",
        "show me the balance of my savings account",
        "tell me how much is left in my account",
        "what's my current balance",
    ],
    "transfer": [
        "move 200 dollars from savings to checking",
        "send money to my brother's account",
        "transfer fifty euros to my credit card",
        "I need to wire funds to another bank",
        "can you move cash between my accounts",
    ],
    "lost_card": [
        "I lost my debit card",
        "my credit card was stolen yesterday",
        "block my card, I can't find it",
        "someone took my wallet with my bank card",
        "report a missing card",
    ],
    "weather": [
        "what's the weather like tomorrow",
        "will it rain this afternoon",
        "how cold is it outside right now",
        "do I need an umbrella today",
        "give me the forecast for the weekend",
    ],
    "alarm": [
        "wake me up at six thirty",
        "set an alarm for 7 am tomorrow",
        "cancel my morning alarm",
        "remind me with an alarm in twenty minutes",
        "change my alarm to a later time",
    ],
    "restaurant": [
        "book a table for four at eight tonight",
        "reserve dinner at an italian place",
        "find me a sushi restaurant nearby",
        "is there a good vegetarian restaurant around here",
        "make a lunch reservation for two",
    ],
    "flight_status": [
        "is my flight to boston on time",
        "has flight 220 been delayed",
        "when does my plane land",
        "check the status of my departure tomorrow",
        "which gate does my flight leave from",
    ],
    "translate": [
        "how do you say thank you in japanese",
        "translate good morning into spanish",
        "what does bonjour mean in english",
        "say where is the station in german",
        "translate this sentence to french",
    ],
    "timer": [
        "start a timer for ten minutes",
        "set a five minute timer for the pasta",
        "how much time is left on my timer",
        "stop the kitchen timer",
        "count down thirty seconds",
    ],
    "recipe": [
        "how do I make pancakes",
        "give me a recipe for chicken curry",
        "what can I cook with rice and eggs",
        "how long should I bake banana bread",
        "show me an easy soup recipe",
    ],
}
INTENT_QUERIES = [
    "how much is in my savings",
    "please move 100 dollars into checking",
    "my card is gone, freeze it",
    "is it going to snow tonight",
    "set an alarm for half past five",
    "get me a table at a thai restaurant",
    "is the 9 o'clock flight to denver delayed",
    "what is cat in italian",
    "put a timer on for fifteen minutes",
    "how do you make lasagna",
    "what's left in my checking account",
    "wire money to my landlord",
    "I think my visa card was stolen",
    "what temperature will it be on saturday",
    "turn off the alarm for tomorrow",
    "how long until my timer rings",
    "who won the football game last night",  # out of scope for these intents
    "tell me a joke about penguins",
    "what is the capital of australia",
    "play some relaxing music",
]
REVIEWS: dict[str, list[tuple[str, int]]] = {
    "phones": [
        ("The battery lasts two full days, which is great.", 1),
        ("Sound quality on calls is crisp and clear.", 1),
        ("The charger stopped working after a week.", 0),
        ("Screen cracked the first time I dropped it.", 0),
        ("Fits my pocket well and feels solid.", 1),
        ("The headset kept disconnecting from my phone.", 0),
        ("Setup took five minutes and it just worked.", 1),
        ("Buttons are too small and hard to press.", 0),
        ("Excellent value for the price.", 1),
        ("Reception is terrible inside my house.", 0),
    ],
    "restaurants": [
        ("The waiter was friendly and the food came quickly.", 1),
        ("My steak was cold and overcooked.", 0),
        ("Best tacos I have had in years.", 1),
        ("We waited an hour for a table despite our reservation.", 0),
        ("The dessert menu is small but everything is delicious.", 1),
        ("The place was dirty and the staff seemed annoyed.", 0),
        ("Generous portions and fair prices.", 1),
        ("The soup was bland and far too salty.", 0),
        ("A cozy spot with great coffee.", 1),
        ("Rude service ruined an otherwise fine meal.", 0),
    ],
    "movies": [
        ("The acting was superb and the story kept me hooked.", 1),
        ("A boring plot with no surprises at all.", 0),
        ("Beautiful photography and a moving soundtrack.", 1),
        ("I walked out halfway through, it was that bad.", 0),
        ("The characters felt real and the dialogue was sharp.", 1),
        ("Two hours of my life I will never get back.", 0),
        ("A clever script with a twist I did not see coming.", 1),
        ("The special effects looked cheap and fake.", 0),
        ("My kids loved it and so did I.", 1),
        ("The ending made no sense whatsoever.", 0),
    ],
}
REVIEW_QUERIES = [
    "the battery died quickly",
    "calls sound clear",
    "the food was cold",
    "slow service at the restaurant",
    "great acting and a gripping story",
    "a dull movie with a bad ending",
    "cheap and good quality",
    "friendly staff and tasty dishes",
]
PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar."),
    ("A woman is slicing an onion.", "Someone is cutting vegetables."),
    ("Two dogs run through a snowy field.", "Dogs are playing in the snow."),
    ("The cat sleeps on the sofa.", "A plane takes off from the runway."),
    ("How do I reset my password?", "I forgot my password."),
    ("The train was late again this morning.", "My commute was delayed today."),
    ("She is reading a book in the park.", "A girl reads outside."),
    ("The stock market fell sharply.", "Share prices dropped a lot."),
    ("He bought a new laptop.", "The weather is sunny."),
    ("Children are swimming in the lake.", "Kids swim in the water."),
]


@dataclass(frozen=True)
class Pools:
    """Collections to load (`intent_items`, `review_items`: id, text, metadata) and what the users send."""

    intent_items: list[dict[str, Any]]
    review_items: list[dict[str, Any]]
    intent_queries: list[str]
    review_queries: list[str]
    pairs: list[tuple[str, str]]
    sentences: list[str]


def fixtures() -> Pools:
    """The project-written texts above."""
    intents: list[dict[str, Any]] = [
        {"id": f"{label}-{i}", "text": text, "metadata": {"label": label}}
        for label, texts in INTENTS.items()
        for i, text in enumerate(texts)
    ]
    reviews: list[dict[str, Any]] = [
        {"id": f"{source}-{i}", "text": text, "metadata": {"source": source, "sentiment": sentiment}}
        for source, rows in REVIEWS.items()
        for i, (text, sentiment) in enumerate(rows)
    ]
    texts = [item["text"] for item in intents + reviews] + INTENT_QUERIES + REVIEW_QUERIES
    return Pools(intents, reviews, INTENT_QUERIES, REVIEW_QUERIES, PAIRS, texts + [t for p in PAIRS for t in p])


def shared(path: str | Path) -> Pools:
    """The public datasets under `path` (the layout of ../shared/data), read in place."""
    os.environ["O2V_SHARED_DATA"] = str(Path(path).resolve())  # service.datasets reads its root from the settings
    from service.datasets import read_clinc, read_reviews, read_sts

    intents = [
        {"id": f"clinc-{i}", "text": text, "metadata": {"label": label}}
        for i, (text, label) in enumerate(read_clinc("train"))
        if label != "oos"
    ]
    reviews: list[dict[str, Any]] = [
        {"id": f"{source}-{i}", "text": text, "metadata": {"source": source, "sentiment": sentiment}}
        for i, (text, sentiment, source) in enumerate(read_reviews())
    ]
    pairs = [(p.a, p.b) for p in read_sts("dev")]
    sentences = list(dict.fromkeys(t for pair in pairs for t in pair))
    return Pools(intents, reviews, [t for t, _ in read_clinc("val")], [r["text"] for r in reviews], pairs, sentences)


def load(shared_data: str | Path | None) -> Pools:
    """`shared(shared_data)` when a folder is given, else `fixtures()`."""
    return shared(shared_data) if shared_data else fixtures()
