"""Bulk load: formats, column mapping, resuming after an interruption, and the `o2v index` commands end to end."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.index.errors import InvalidRequest
from service.index.loader import Columns, load, read_records
from tests.index_fixtures import registry, unit_vectors


def embed(texts: list[str]) -> np.ndarray:
    """A vector per distinct text, the same on every call."""
    return np.stack([unit_vectors(1, seed=zlib.crc32(t.encode()))[0] for t in texts])


def test_csv_with_header_maps_columns_and_types(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('id,review,stars,shop\nA7,"Great, tasty food",5,north\nB2,Cold soup,1,south\n')
    columns = Columns("review", id="id", label="stars", metadata={"where": "shop"}, constants={"src": "t"}, typed=True)
    collection, _ = registry(tmp_path / "data").create("c")
    report = load(collection, read_records(path, "csv"), columns, embed, "r", progress=False)
    assert (report.read, report.upserted, report.skipped) == (2, 2, 0)
    hit = collection.search(embed(["Great, tasty food"])[0], 1)[0]
    assert (hit.id, hit.text, hit.metadata) == ("A7", "Great, tasty food", {"src": "t", "where": "north", "label": 5})


def test_tsv_without_header_keeps_bare_quotes_and_odd_characters(tmp_path) -> None:
    path = tmp_path / "reviews.txt"
    path.write_text('"He said, wow\t1\nNext\x85line stays one row.  \t0\n', encoding="utf-8")
    rows = list(read_records(path, "tsv", header=False))
    assert rows == [['"He said, wow', "1"], ["Next\x85line stays one row.  ", "0"]]
    collection, _ = registry(tmp_path / "data").create("c")
    load(collection, rows, Columns("0", label="1", typed=True), embed, "reviews", progress=False)
    load(collection, rows[1:], Columns("0", label="1", typed=True), embed, "other", progress=False)
    ids, _ = collection.vectors()
    assert ids == ["reviews-0", "reviews-1", "other-0"]
    assert collection.items(["reviews-1"])[0].text == "Next\x85line stays one row."
    assert collection.items(["reviews-0"])[0].metadata == {"label": 1}


def test_json_lines_and_json_records(tmp_path) -> None:
    lines = tmp_path / "x.jsonl"
    lines.write_text(
        json.dumps({"t": "one", "tags": {"a": 1}}) + "\n\n" + json.dumps({"t": "two", "tags": None}) + "\n"
    )
    assert [r["t"] for r in read_records(lines, "jsonl")] == ["one", "two"]
    doc = tmp_path / "x.json"
    doc.write_text(json.dumps({"train": [["book a flight", "travel"], ["hi there", "greet"]], "test": []}))
    collection, _ = registry(tmp_path / "data").create("c")
    load(
        collection, read_records(doc, "json", records_key="train"), Columns("0", label="1"), embed, "t", progress=False
    )
    assert collection.items(["t-1"])[0].metadata == {"label": "greet"}


def test_missing_column_names_the_row(tmp_path) -> None:
    collection, _ = registry(tmp_path).create("c")
    with pytest.raises(InvalidRequest, match="row 1 has no column 'label'"):
        load(
            collection,
            [{"text": "a", "label": 1}, {"text": "b"}],
            Columns("text", label="label"),
            embed,
            "x",
            progress=False,
        )


def test_interrupted_load_resumes_and_skips_unchanged(tmp_path) -> None:
    rows = [[f"sentence number {i}", i % 3] for i in range(50)]
    collection, _ = registry(tmp_path).create("c")
    calls = []

    def flaky(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return embed(texts)

    with pytest.raises(RuntimeError):
        load(collection, rows, Columns("0", label="1"), flaky, "s", batch_size=10, progress=False)
    assert collection.info()["count"] == 20
    report = load(collection, rows, Columns("0", label="1"), embed, "s", batch_size=10, progress=False)
    assert (report.read, report.skipped, report.upserted) == (50, 20, 30)
    rows[7][0] = "an edited sentence"
    report = load(collection, rows, Columns("0", label="1"), embed, "s", batch_size=10, progress=False)
    assert (report.skipped, report.upserted) == (49, 1)
    assert collection.search(embed(["an edited sentence"])[0], 1)[0].id == "s-7"
    rows[8][1] = "relabelled"
    report = load(collection, rows, Columns("0", label="1"), embed, "s", batch_size=10, progress=False)
    assert (report.skipped, report.upserted) == (49, 1)
    assert collection.items(["s-8"])[0].metadata == {"label": "relabelled"}


def test_cli_load_search_classify_cluster(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    path = tmp_path / "intents.jsonl"
    rows = [("book a flight to paris", "travel"), ("what's the weather like", "weather"), ("hello there", "greet")]
    path.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in rows))
    base = ["--data-dir", str(data)]
    assert main(["index", "load", "intents", str(path), "--label", "intent", "--index", "hnsw", "--quiet", *base]) == 0
    assert json.loads(capsys.readouterr().out)["upserted"] == 3
    assert main(["index", "list", *base]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == "hnsw"
    assert main(["index", "search", "intents", "hello there", "--top-k", "1", "--filter", "label=greet", *base]) == 0
    assert "intents-2  hello there" in capsys.readouterr().out
    assert main(["index", "classify", "intents", "hello there", "--k", "1", "--min-score", "0.5", *base]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "greet"
    assert main(["index", "cluster", "intents", "--k", "2", *base]) == 0
    assert capsys.readouterr().out.count("cluster ") == 2
    assert main(["index", "cluster", "intents", "--k", "9", *base]) == 2
    assert main(["index", "search", "nope", "x", *base]) == 2
    assert not Path(data / "nope").exists()
