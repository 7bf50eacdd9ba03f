"""Readers for the public datasets in ../shared/data (STS-B, CLINC150, review sentences), read in place.

The location is the `shared_data` setting (O2V_SHARED_DATA, default ../shared/data beside the repository).
Nothing here copies data.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from service.settings import Settings


def data_root() -> Path:
    return Settings().shared_data.resolve()


@dataclass(frozen=True)
class StsPair:
    score: float
    a: str
    b: str


def read_sts(split: str) -> list[StsPair]:
    """STS-B train/dev/test: tab-separated, no header, bare quotes (QUOTE_NONE), score in column 5."""
    return read_sts_file(data_root() / "stsbenchmark" / f"sts-{split}.csv")


def read_sts_file(path: Path) -> list[StsPair]:
    """One STS-B file (sts-train/dev/test.csv) wherever it lies."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [StsPair(float(r[4]), r[5], r[6]) for r in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]


def read_clinc(split: str) -> list[tuple[str, str]]:
    """CLINC150 (data_full.json) split as (text, intent); 'oos_<split>' rows are included with intent 'oos'."""
    data = json.loads((data_root() / "clinc150" / "data_full.json").read_text())
    return [(t, label) for t, label in data[split] + data[f"oos_{split}"]]


def read_reviews() -> list[tuple[str, int, str]]:
    """The 3,000 review sentences as (sentence, sentiment, source); iterated by line, so U+0085 stays inside."""
    out = []
    folder = data_root() / "sentiment_labelled_sentences"
    for source in ("amazon_cells", "yelp", "imdb"):
        with open(folder / f"{source}_labelled.txt", encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                out.append((row[0].strip(), int(row[1]), source))
    return out


SETTLED_NS = 2_000_000_000
"""A file last changed at least this long before it was hashed has its hash remembered. A file rewritten in place
to the same size within the clock's granularity (a few ms on Linux) keeps its modification and change times, so a
hash taken that soon after a change could outlive the next change (git's "racy" entries); 2 s is well past any
filesystem's granularity but FAT's."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks (model cards record what a model was trained on). Remembered for
    the file as it is (inode, size, modification and change times): the drift monitor checks the served
    encoder.onnx (12 MB bundled, hundreds for larger models) at every app start and every change of model."""
    stat = os.stat(path)
    version = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < SETTLED_NS:
        return _sha256(path)
    return _remembered_sha256(str(Path(path).resolve()), version)


@lru_cache(maxsize=64)
def _remembered_sha256(path: str, version: tuple[int, ...]) -> str:
    return _sha256(Path(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_files() -> list[dict[str, str]]:
    """The dataset files a bundled model may be trained on, with sha256 (never STS-B test or CLINC150 test)."""
    root = data_root()
    names = [
        "stsbenchmark/sts-train.csv",
        "stsbenchmark/sts-dev.csv",
        "clinc150/data_full.json",
        "sentiment_labelled_sentences/amazon_cells_labelled.txt",
        "sentiment_labelled_sentences/yelp_labelled.txt",
        "sentiment_labelled_sentences/imdb_labelled.txt",
    ]
    return [{"file": n, "sha256": file_sha256(root / n)} for n in names]
