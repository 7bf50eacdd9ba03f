"""`o2v datasets fetch` against a real HTTP server on loopback that serves the stand-in datasets
(tests/public_data_fixtures.py) under the original download names and formats, built here: STS-B as a .tar.gz,
CLINC150 as raw files, the review sentences as a .zip with macOS's __MACOSX/ copies beside them."""

from __future__ import annotations

import json
import shutil
import tarfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.cli import main
from service.dataset_fetch import SOURCES, Source, fetch, mismatches
from service.datasets import file_sha256, read_clinc, read_reviews, read_sts
from service.errors import BadGateway, Unavailable
from service.model.model_dir import ModelDir
from service.settings import DEFAULT_MODEL_DIR

ZIP_FOLDER = "sentiment labelled sentences"  # the folder the UCI zip keeps its files in


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        self.server.paths.append(urllib.parse.unquote(self.path))  # type: ignore[attr-defined]


@contextmanager
def serving(folder: Path, handler: type[QuietHandler] = QuietHandler) -> Iterator[tuple[str, list[str]]]:
    """A threaded http.server on a free loopback port serving folder; yields its URL and the paths asked for."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.paths  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def mirror_of(data: Path, out: Path, sources: Sequence[Source] = SOURCES) -> Path:
    """data's datasets as each source serves them, under out/<dataset>/<download name> (the --mirror layout)."""
    for source in sources:
        folder = out / source.name
        folder.mkdir(parents=True)
        names = [name for _, name in source.downloads()]
        files = {name: data / source.name / name for name in source.files}
        if source.archive == ".tar.gz":
            with tarfile.open(folder / names[0], "w:gz") as tf:
                for name, path in files.items():
                    tf.add(path, arcname=f"{source.name}/{name}")
        elif source.archive == ".zip":
            with zipfile.ZipFile(folder / names[0], "w", zipfile.ZIP_DEFLATED) as zf:
                for name, path in files.items():
                    zf.write(path, f"{ZIP_FOLDER}/{name}")
                    zf.writestr(f"__MACOSX/{ZIP_FOLDER}/{name}", b"\x00\x05\x16\x07 resource fork")
        else:
            for name, path in files.items():
                shutil.copy(path, folder / name)
    return out


def pinned_to(data: Path) -> list[Source]:
    """The real table with the stand-in files' sha256: same URLs, names and formats."""
    return [replace(s, files={name: file_sha256(data / s.name / name) for name in s.files}) for s in SOURCES]


def test_every_dataset_lands_in_the_layout_the_readers_read(
    tmp_path: Path, public_data_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "shared"
    with serving(mirror_of(public_data_tree, tmp_path / "mirror")) as (url, paths):
        assert [fetch(s, dest, url, timeout=10, progress=False) for s in pinned_to(public_data_tree)] == ["fetched"] * 3
        asked = sorted(paths)
        assert [fetch(s, dest, url, timeout=10, progress=False) for s in pinned_to(public_data_tree)] == ["present"] * 3
        assert sorted(paths) == asked  # checked on disk, not downloaded again
    assert asked == sorted(
        [
            "/stsbenchmark/Stsbenchmark.tar.gz",
            "/clinc150/data_full.json",
            "/clinc150/data_small.json",
            "/clinc150/domains.json",
            "/sentiment_labelled_sentences/sentiment+labelled+sentences.zip",
        ]
    )
    assert sorted(p.name for p in dest.iterdir()) == sorted(s.name for s in SOURCES)  # no staging folder left
    for source in SOURCES:
        kept = {p.name for p in (dest / source.name).iterdir()}
        assert kept == {*source.files, "SOURCE.md"}  # archives unpacked and gone, __MACOSX/ not taken
        for name in source.files:
            assert (dest / source.name / name).read_bytes() == (public_data_tree / source.name / name).read_bytes()
        note = (dest / source.name / "SOURCE.md").read_text()
        assert source.url in note and source.licence in note and f"through the mirror {url}" in note
    monkeypatch.setenv("O2V_SHARED_DATA", str(dest))
    fetched = read_sts("dev"), read_clinc("train"), read_reviews()
    monkeypatch.setenv("O2V_SHARED_DATA", str(public_data_tree))
    assert fetched == (read_sts("dev"), read_clinc("train"), read_reviews())
    assert "\u0085" in "".join(s for s, _, _ in fetched[2])  # the zip kept the bytes: NEL inside a sentence


def test_a_file_that_fails_its_sha256_is_refused_and_nothing_of_it_is_written(
    tmp_path: Path, public_data_tree: Path
) -> None:
    sentiment, clinc = pinned_to(public_data_tree)[2], pinned_to(public_data_tree)[1]
    served = shutil.copytree(public_data_tree, tmp_path / "served")
    yelp = served / sentiment.name / "yelp_labelled.txt"
    yelp.write_text(yelp.read_text().replace("\t1\n", "\t0\n", 1))  # one label flipped
    (served / clinc.name / "domains.json").write_text(json.dumps({"banking": ["transfer"]}))
    mirror = mirror_of(served, tmp_path / "mirror")
    dest = tmp_path / "shared"
    with serving(mirror) as (url, _):
        with pytest.raises(BadGateway, match=r"yelp_labelled\.txt has sha256 [0-9a-f]{64}, not the pinned"):
            fetch(sentiment, dest, url, timeout=10, progress=False)
        with pytest.raises(BadGateway, match=r"domains\.json has sha256"):
            fetch(clinc, dest, url, timeout=10, progress=False)
    assert list(dest.iterdir()) == []  # neither dataset, and no hidden staging folder


def test_the_cli_prints_source_and_licence_and_refuses_files_that_are_not_the_real_ones(
    tmp_path: Path, public_data_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real table's pins against the stand-in files: every dataset is refused (exit 76), nothing is written."""
    dest = tmp_path / "shared"
    with serving(mirror_of(public_data_tree, tmp_path / "mirror")) as (url, paths):
        for source in SOURCES:
            assert main(["datasets", "fetch", source.name, "--to", str(dest), "--mirror", url, "--no-progress"]) == 76
            out, err = capsys.readouterr()
            assert f"source: {source.url}" in out and f"licence: {source.licence}" in out
            assert f"o2v datasets: error: {source.name}: " in err and "not the pinned" in err
            assert "nothing written" in err
    assert len(paths) == 5 and list(dest.iterdir()) == []


def test_a_missing_file_an_unreachable_source_and_a_broken_archive_leave_nothing(
    tmp_path: Path, public_data_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest, empty = tmp_path / "shared", tmp_path / "empty"
    empty.mkdir()
    with serving(empty) as (url, _):
        assert main(["datasets", "fetch", "clinc150", "--to", str(dest), "--mirror", url, "--no-progress"]) == 69
        assert "cannot download " + url + "/clinc150/data_full.json: HTTP 404" in capsys.readouterr().err
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    assert main(["datasets", "fetch", "clinc150", "--to", str(dest), "--mirror", closed, "--timeout", "5"]) == 69
    assert "cannot download http://127.0.0.1:9/clinc150/data_full.json" in capsys.readouterr().err
    broken = tmp_path / "broken" / "stsbenchmark"
    broken.mkdir(parents=True)
    (broken / "Stsbenchmark.tar.gz").write_bytes(b"<html>Moved</html>")  # what a captive portal answers
    with serving(broken.parent) as (url, _), pytest.raises(BadGateway, match=r"not a readable \.tar\.gz archive"):
        fetch(pinned_to(public_data_tree)[0], dest, url, timeout=10, progress=False)
    assert list(dest.iterdir()) == []
    assert main(["datasets", "fetch", "glue"]) == 2
    assert "no dataset 'glue': one of stsbenchmark, clinc150, sentiment_labelled_sentences" in capsys.readouterr().err


def test_the_default_destination_is_the_shared_data_setting_and_a_folder_there_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    (shared / "clinc150").mkdir(parents=True)
    (shared / "clinc150" / "data_full.json").write_text("{}")
    monkeypatch.setenv("O2V_SHARED_DATA", str(shared))
    assert main(["datasets", "fetch", "clinc150", "--mirror", "http://127.0.0.1:9"]) == 2  # no download tried
    err = capsys.readouterr().err
    assert f"{shared / 'clinc150'} is already there, but data_full.json has sha256" in err and "move it away" in err
    assert [p.name for p in (shared / "clinc150").iterdir()] == ["data_full.json"]


def test_the_pins_are_the_files_the_bundled_model_was_trained_on() -> None:
    """The table's sha256 are the bytes the model card records (and the benchmarks were measured on)."""
    pins = {f"{s.name}/{name}": sha for s in SOURCES for name, sha in s.files.items()}
    card = ModelDir.load(DEFAULT_MODEL_DIR).card["training_data"]["files"]
    assert card and all(pins[f["file"]] == f["sha256"] for f in card)
    assert mismatches(Path("/nonexistent"), {"a.txt": "0" * 64}) == ["a.txt is missing"]


def test_an_oversized_download_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import dataset_fetch

    monkeypatch.setattr(dataset_fetch, "MAX_BYTES", 1000)
    served = tmp_path / "mirror" / "clinc150"
    served.mkdir(parents=True)
    (served / "data_full.json").write_bytes(b"x" * 5000)
    with serving(served.parent) as (url, _), pytest.raises(BadGateway, match="more than 1000 bytes"):
        fetch(SOURCES[1], tmp_path / "shared", url, timeout=10, progress=False)
    assert list((tmp_path / "shared").iterdir()) == []
    assert Unavailable.exit_code == 69 and BadGateway.exit_code == 76


def test_two_fetches_of_one_dataset_at_once_end_with_one_checked_copy(tmp_path: Path, public_data_tree: Path) -> None:
    """Both download (the server answers neither until both asked), both stage; one renames into place and the other
    finds that copy and checks it instead of failing."""
    clinc = pinned_to(public_data_tree)[1]
    both_asked = threading.Barrier(2, timeout=10)

    class BothAtOnce(QuietHandler):
        def do_GET(self) -> None:
            if self.path.endswith("/data_full.json"):
                both_asked.wait()
            super().do_GET()

    results: list[str] = []
    with serving(mirror_of(public_data_tree, tmp_path / "mirror", [clinc]), BothAtOnce) as (url, _):
        fetches = [
            threading.Thread(target=lambda: results.append(fetch(clinc, tmp_path / "shared", url, 10, False)))
            for _ in range(2)
        ]
        for t in fetches:
            t.start()
        for t in fetches:
            t.join()
    assert sorted(results) == ["fetched", "present"]
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["clinc150"]
    assert mismatches(tmp_path / "shared" / "clinc150", clinc.files) == []
