"""A tiny stand-in for the public datasets, written by the tests: the layout and file formats of ../shared/data
(STS-B, CLINC150, review sentences; see each dataset's SOURCE.md there) with sentences made up here from templates,
so that no test needs the real data beside the clone. Seeded: the same tree every run.

Sizes: STS-B 500 train, 250 dev and 300 test pairs (three genres, some rows with the two licence columns, bare quotes);
CLINC150 six intents in three domains plus out-of-scope; 20 reviews a source (10 positive), a U+0085 inside an IMDb
sentence and trailing spaces before the tab as in the real files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

STS_SIZES = {"train": 500, "dev": 250, "test": 300}
REVIEWS_PER_SOURCE = 20

_PEOPLE = ["man", "woman", "boy", "girl", "child", "chef", "musician", "dancer", "player", "student", "farmer", "cook"]
_SYNONYM = {"man": "guy", "woman": "lady", "boy": "kid", "girl": "young girl", "child": "kid", "chef": "cook"}
_ACTIONS = [
    "playing a guitar", "slicing an onion", "riding a horse", "cutting a tomato", "playing the piano",
    "peeling a potato", "riding a bike", "dancing on a stage", "swimming in a pool", "playing the flute",
    "walking a dog", "reading a book", "cooking some rice", "throwing a ball", "climbing a rock wall",
    "driving a car", "painting a fence", "jumping on a trampoline", "mixing some eggs", "eating a sandwich",
]  # fmt: skip
_PLACES = ["in a park", "on the beach", "in the kitchen", "on a street", "in a field", "at a table", "in the snow"]
_ACTORS = [
    "Police", "The government", "Officials", "Protesters", "Rescue workers", "The central bank", "Voters",
    "Lawmakers", "Doctors", "Investors", "The army", "Firefighters",
]  # fmt: skip
_EVENTS = [
    "arrest two men after a bank robbery", "raise interest rates", "approve a new budget", "evacuate thousands",
    "march against new taxes", "warn of heavy floods", "search for missing climbers", "seize a drug shipment",
    "reject the peace deal", "sell shares after weak profits", "hold talks on trade", "open an inquiry into the crash",
]  # fmt: skip
_CITIES = ["Chicago", "Paris", "Cairo", "Lagos", "Delhi", "Sydney", "Madrid", "Nairobi", "Tokyo", "Lima", "Berlin"]
_TOPICS = [
    "learning a second language", "working from home", "a good night's sleep", "saving part of every salary",
    "writing tests first", "reading the manual", "asking the teacher", "cooking at home", "walking to work",
    "a short daily run", "keeping a diary", "using a password manager",
]  # fmt: skip
_OPINIONS = ["is worth the effort", "is overrated", "helps more than people think", "depends on the person",
             "is hard at first", "saves a lot of time"]  # fmt: skip
_REASONS = ["in my experience", "if you are patient", "for most beginners", "as far as I know", "in the long run"]


def _caption(rng: random.Random) -> tuple[str, str, float]:
    person, action, place = rng.choice(_PEOPLE), rng.choice(_ACTIONS), rng.choice(_PLACES)
    a = f"A {person} is {action} {place}."
    kind = rng.randrange(3)
    if kind == 0:
        return a, f"A {_SYNONYM.get(person, person)} is {action}.", rng.choice([4.0, 4.6, 5.0])
    if kind == 1:
        return a, f"A {rng.choice(_PEOPLE)} is {action} {rng.choice(_PLACES)}.", rng.choice([2.4, 3.0, 3.2])
    return a, f"A {person} is {rng.choice(_ACTIONS)}.", rng.choice([0.0, 0.5, 1.2])


def _either(rng: random.Random, a: str, close: str, far: str, scores: tuple[float, float]) -> tuple[str, str, float]:
    """a with its paraphrase (a high score) or with an unrelated sentence of the same kind (a low one)."""
    if rng.random() < 0.5:
        return a, close, round(scores[0] + rng.random(), 1)
    return a, far, round(scores[1] + rng.random(), 1)


def _headline(rng: random.Random) -> tuple[str, str, float]:
    actor, event, city = rng.choice(_ACTORS), rng.choice(_EVENTS), rng.choice(_CITIES)
    far = f"{rng.choice(_ACTORS)} in {rng.choice(_CITIES)} {rng.choice(_EVENTS)}"
    return _either(rng, f"{actor} in {city} {event}", f"{city} {actor.lower()} {event}", far, (4.0, 0.2))


def _forum(rng: random.Random) -> tuple[str, str, float]:
    topic, opinion, reason = rng.choice(_TOPICS), rng.choice(_OPINIONS), rng.choice(_REASONS)
    a = f'I think {topic} {opinion}, {reason}. "Try it" is my advice.'
    far = f"{rng.choice(_TOPICS).capitalize()} {rng.choice(_OPINIONS)}."
    return _either(rng, a, f"In my opinion {topic} {opinion}.", far, (3.0, 0.4))


def sts_rows(split: str, n: int, seed: int) -> list[list[str]]:
    """STS-B rows: genre, source, year, id, score, sentence1, sentence2 (+ two licence columns on some forum rows)."""
    rng = random.Random(f"{split}-{seed}")
    makers = [("main-captions", "MSRvid", _caption), ("main-news", "headlines", _headline)]
    makers.append(("main-forum" if split == "train" else "main-forums", "answer-answer", _forum))
    rows = []
    for i in range(n):
        genre, source, make = makers[i * len(makers) // n]  # grouped by genre, as the real files are
        a, b, score = make(rng)
        row = [genre, source, "2016", f"{i:04d}", f"{score:.3f}", a, b]
        if source == "answer-answer" and i % 4 == 0:
            row += [f"StackExchange Network: http://example.stackexchange.com/questions/{i} Author: a{i}"] * 2
        rows.append(row)
    return rows


_INTENTS = {
    "banking": {
        "transfer": ["transfer {n} dollars from my checking to my savings", "please move {n} dollars to savings"],
        "balance": ["what is the balance of my {acct} account", "how much money is in my {acct} account"],
    },
    "travel": {
        "book_flight": ["book a flight to {city} for {day}", "i need a plane ticket to {city} on {day}"],
        "weather": ["what is the weather like in {city} on {day}", "will it rain in {city} {day}"],
    },
    "utility": {
        "timer": ["set a timer for {n} minutes", "start a {n} minute timer"],
        "translate": ["how do you say {word} in {lang}", "what is the {lang} word for {word}"],
    },
}
_OOS = ["how many calories are in a {word}", "who won the game in {city} on {day}", "tell me the history of {city}"]
_SLOTS = {
    "n": [str(n) for n in (5, 10, 15, 20, 25, 40, 50, 75, 100, 250)],
    "acct": ["checking", "savings", "joint", "business"],
    "city": [c.lower() for c in _CITIES],
    "day": ["monday", "friday", "the weekend", "tomorrow", "next week"],
    "word": ["apple", "bread", "cheese", "window", "friend", "river"],
    "lang": ["spanish", "french", "german", "italian"],
}


def _utterance(rng: random.Random, templates: list[str]) -> str:
    return rng.choice(templates).format(**{k: rng.choice(v) for k, v in _SLOTS.items()})


def clinc(seed: int, per_split: dict[str, int]) -> dict[str, list[list[str]]]:
    """A data_full.json-shaped object: {split: [[query, intent], ...]} with oos_<split> rows labelled 'oos'."""
    rng = random.Random(seed)
    intents = {name: t for domain in _INTENTS.values() for name, t in domain.items()}
    out: dict[str, list[list[str]]] = {}
    for split, n in per_split.items():
        out[split] = [[_utterance(rng, t), name] for name, t in intents.items() for _ in range(n)]
        out[f"oos_{split}"] = [[_utterance(rng, _OOS), "oos"] for _ in range(max(2, n // 2))]
    return out


_REVIEWS = {
    "amazon_cells": (["phone", "headset", "charger", "battery", "case"], ["works great", "was a good purchase"],
                     ["broke after a week", "does not hold a charge"]),
    "yelp": (["food", "waiter", "pizza", "service", "dessert"], ["was amazing", "was friendly and fast"],
             ["was cold and bland", "was rude to us"]),
    "imdb": (["movie", "plot", "acting", "ending", "soundtrack"], ["was wonderful", "kept me watching"],
             ["was a waste of time", "made no sense at all"]),
}  # fmt: skip


def reviews(source: str, seed: int) -> str:
    """`sentence<TAB>label` lines, LF, no header; some sentences end in spaces; IMDb holds a U+0085 mid-sentence."""
    rng = random.Random(f"{source}-{seed}")
    things, good, bad = _REVIEWS[source]
    lines = []
    for i in range(REVIEWS_PER_SOURCE):
        label = i % 2
        sentence = f"The {rng.choice(things)} {rng.choice(good if label else bad)}."
        if i % 5 == 0:
            sentence += "  "
        lines.append(f"{sentence}\t{label}\n")
    if source == "imdb":
        lines[3] = f"The {things[0]} was\u0085 great fun to watch.\t1\n"
    return "".join(lines)


def write_public_data(root: Path, seed: int = 0) -> Path:
    """The tree O2V_SHARED_DATA points at, under root: stsbenchmark/, clinc150/, sentiment_labelled_sentences/."""
    sts = root / "stsbenchmark"
    sts.mkdir(parents=True)
    for split, n in STS_SIZES.items():
        rows = sts_rows(split, n, seed)
        (sts / f"sts-{split}.csv").write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    (sts / "readme.txt").write_text("STS Benchmark stand-in written by the tests.\n")
    (sts / "LICENSE.txt").write_text("Made-up sentences: no licence needed.\n")
    intents = root / "clinc150"
    intents.mkdir()
    (intents / "data_full.json").write_text(json.dumps(clinc(seed, {"train": 10, "val": 4, "test": 4})))
    (intents / "data_small.json").write_text(json.dumps(clinc(seed + 1, {"train": 5, "val": 4, "test": 4})))
    domains = {domain: list(names) for domain, names in _INTENTS.items()}
    (intents / "domains.json").write_text(json.dumps(domains))
    folder = root / "sentiment_labelled_sentences"
    folder.mkdir()
    for source in _REVIEWS:
        (folder / f"{source}_labelled.txt").write_text(reviews(source, seed), encoding="utf-8", newline="\n")
    (folder / "readme.txt").write_text("Sentiment Labelled Sentences stand-in written by the tests.\n")
    return root
