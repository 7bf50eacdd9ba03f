"""The HTML report (an inline SVG per stream, well-formed), the terminal report, and baseline files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from service.drift.files import read_baseline_file
from service.drift.report import render_html
from service.drift.terminal import render_text, strip
from tests.drift_fixtures import config, feed, monitor, scores


def doc() -> dict:
    m = monitor()
    feed(m, "similarity", scores(120, mean=0.8))
    feed(m, "team-a", scores(30))
    return m.report()


def test_html_has_one_well_formed_svg_per_stream() -> None:
    report = doc()
    page = render_html(report)
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    sections = re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S)
    assert (
        [name for name, _ in sections]
        == list(report["streams"])
        == ["similarity", "search_top1", "classify_confidence", "team-a"]
    )
    assert all("<svg" in body for _, body in sections)
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML, so every browser draws it
    assert '<span class="badge" style="background:#e03131">drift</span>' in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_html_escapes_names_and_advice() -> None:
    report = doc()
    report["streams"]["<b>x</b>"] = report["streams"].pop("team-a")
    assert "<b>x</b>" not in render_html(report)


def test_terminal_report_marks_crossed_thresholds() -> None:
    text = render_text(doc())
    line = next(row for row in text.splitlines() if row.startswith("similarity"))
    assert "drift" in line and "!!" in line
    assert "[similarity] drift" in text and "baseline |" in text
    assert strip([0.0, 0.5, 1.0], 1.0) == " ▄█"


def test_baseline_files(tmp_path: Path) -> None:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    assert read_baseline_file(write("a.json", '{"scores": [0.1, 0.2]}')) == {"scores": [0.1, 0.2]}
    assert read_baseline_file(write("b.json", "[0.1, 0.2]")) == {"scores": [0.1, 0.2]}
    assert read_baseline_file(write("c.txt", "0.1\n0.2\n")) == {"scores": [0.1, 0.2]}
    lines = "\n".join(json.dumps({"in0": [1, 2], "in1": [3], "label": v}) for v in (0.5, 0.7))
    assert read_baseline_file(write("d.jsonl", lines)) == {"scores": [0.5, 0.7]}
    texts = json.dumps({"in0": "a dog", "in1": "a cat", "label": 1}) + "\n" + json.dumps({"in0": "x", "in1": "y"})
    assert read_baseline_file(write("e.jsonl", texts)) == {"pairs": [["a dog", "a cat", 1], ["x", "y"]]}
    with pytest.raises(ValueError):
        read_baseline_file(write("f.txt", "0.1\nabc\n"))
    with pytest.raises(ValueError):
        read_baseline_file(write("g.json", '{"values": [1]}'))


def test_report_has_a_panel_per_signal_and_chromium_draws_them(tmp_path: Path) -> None:
    """Learn mode: each stream section gets the shift-test panel and the vs-validation-domain panel; headless
    Chromium (when installed) parses the page into a DOM that still holds them."""
    m = monitor(config=config(window=400, check_every=10, baseline="learn", learn_warmup=20, learn_size=150))
    feed(m, "similarity", scores(300, mean=0.2, seed=1))
    page = render_html(m.report())
    section = re.search(r'<section id="similarity">(.*?)</section>', page, flags=re.S)
    assert section is not None
    assert 'class="panel shift"' in section.group(1) and 'class="panel domain"' in section.group(1)
    assert "learned: live:first 150 scores after 20" in section.group(1)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium here (apt-get install chromium)")
    html = tmp_path / "drift.html"
    html.write_text(page)
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()]
    dom = subprocess.run(args, check=True, capture_output=True, timeout=120, text=True).stdout
    assert dom.count('class="panel shift"') >= 1 and dom.count('class="panel domain"') >= 1
    assert "vs the validation domain (model card)" in dom
