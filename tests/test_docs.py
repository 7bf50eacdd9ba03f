"""The documentation stays true to the tree: the settings reference is what `Settings` generates, every relative
link in README.md and docs/ reaches a file (and heading) that exists, and README's test command is what CI runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

from service.settings import GROUPS, REPO, DriftThresholds, HttpTimeouts, KeptTexts, Settings

PAGES = sorted([REPO / "README.md", REPO / "indexes" / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def reference_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_reference", REPO / "scripts" / "settings_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed (links there are examples, not links)."""
    lines, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        heading = None if fence else re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def test_settings_reference_is_current() -> None:
    """docs/settings.md is generated: a setting added, renamed or re-described without regenerating it fails here."""
    expected = reference_script().render()
    committed = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/settings.md is stale: run python scripts/settings_reference.py"


def test_every_setting_is_described() -> None:
    """Every field a variable sets: top-level, in a group, and inside an object setting (the drift thresholds, the
    kept texts, the HTTP timeouts)."""
    models: list[type[BaseModel]] = [*GROUPS.values(), DriftThresholds, KeptTexts, HttpTimeouts]
    named = [(name, f) for name, f in Settings.model_fields.items() if name not in GROUPS]
    named += [(f"{m.__name__}.{name}", f) for m in models for name, f in m.model_fields.items()]
    undescribed = [name for name, field in named if not (field.description or "").strip()]
    assert undescribed == [], f"give these a description in service/settings.py: {undescribed}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for line in prose(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{target}: no {file}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert broken == [], "\n".join(broken)


def test_readme_is_a_newcomers_page() -> None:
    """Short, starting with the quickstart; reference and measured tables belong in docs/."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings[0] == "Quickstart"


def test_ci_runs_the_readme_test_command() -> None:
    """README's second quickstart command (install and test) is the one .ci/run runs (pip's -q aside)."""
    quickstart = (REPO / "README.md").read_text(encoding="utf-8").split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", quickstart)
    assert len(commands) == 2 and "o2v serve" in commands[0] and "pytest" in commands[1]
    ci = [line.replace("pip install -q ", "pip install ") for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci
    # with an empty public-data folder: no test may need ../shared, which a clone from the repository lacks
    assert ci[ci.index(commands[1]) - 1] == 'export O2V_SHARED_DATA="$(mktemp -d)"'
