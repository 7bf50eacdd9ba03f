"""The seams between rooms: serving reads a model through service.model (no torch, no training code); the package
imports none of the checkout's tools (tests/, bench/, loadtests/), which stay out of the wheel; the tools never edit
sys.path, and bench/ runs the load tests as a child process rather than importing them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINING = ("torch", "service.object2vec")
TRAINING_USERS = ("service/object2vec", "service/cli.py")
"""The training package itself, and the CLI that dispatches `o2v train` and friends to it (lazily, per command)."""


def _files(*places: str) -> Iterator[Path]:
    for place in places:
        path = REPO / place
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, lazy ones inside functions too."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_only_the_training_package_imports_torch_or_itself():
    """Serving (api, encoders, drift, index) reads a model through service.model, never through training code."""
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _files("service")
        if not any(path.relative_to(REPO).as_posix().startswith(user) for user in TRAINING_USERS)
        for line, module in _imports(path)
        if _within(module, TRAINING)
    ]
    assert not found


def _modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds once it has run `code` (from the checkout)."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    return list(json.loads(answer.stdout.splitlines()[-1]))


def test_the_app_and_the_encoders_load_without_torch_or_the_training_package():
    loaded = _modules_after(
        "import service.api.app, service.encoders, service.encoders.onnx, service.encoders.sagemaker"
    )
    assert [m for m in loaded if m.split(".")[0] == "torch" or m.startswith("service.object2vec")] == []


def test_o2v_and_the_app_start_without_the_imports_they_do_not_need():
    """Each costs every `o2v` command or every start 1 to 2 s: the CLI's parser (`o2v --help`, and the parsing of
    every command) loads no numpy, scipy or drift monitor; the app loads no scipy (drift's statistics import
    scipy.stats at the first check; the order gate's quantiles are a table) nor bpe_openai (at the first token
    array)."""
    heavy = ("numpy", "scipy", "scipy.stats", "bpe_openai", "service.drift.monitor")
    expected = {
        "import service.cli; service.cli.build_parser()": [],
        "import service.api.app": ["numpy", "service.drift.monitor"],
    }
    for code, modules in expected.items():
        loaded = set(_modules_after(code))
        assert [m for m in heavy if m in loaded] == modules, code


def test_the_package_imports_none_of_the_checkout_s_tools():
    """The wheel holds service/ alone: an import of tests, bench or loadtests would fail once it is installed."""
    tools = ("tests", "bench", "loadtests")
    found = [
        f"{path.relative_to(REPO)}:{n} imports {m}"
        for path in _files("service")
        for n, m in _imports(path)
        if _within(m, tools)
    ]
    assert not found


def test_tools_share_code_without_touching_sys_path():
    """bench/ runs the load tests in a child process (locust patches the standard library on import); the load-test
    runner borrows bench's dependency-free tables and nothing else; none of them edits sys.path."""
    found = []
    for path in _files("bench"):
        found += [f"{path.relative_to(REPO)}:{n} imports {m}" for n, m in _imports(path) if _within(m, ("loadtests",))]
    for path in _files("loadtests"):
        found += [
            f"{path.relative_to(REPO)}:{n} imports {m}"
            for n, m in _imports(path)
            if _within(m, ("bench",)) and m != "bench.tables"
        ]
    for path in _files("bench", "loadtests"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                found.append(f"{path.relative_to(REPO)}:{node.lineno} touches sys.path")
    assert not found


def test_no_tool_module_shadows_the_standard_library():
    shadows = [p.relative_to(REPO) for p in _files("bench", "loadtests") if p.stem in sys.stdlib_module_names]
    assert not shadows


def _imported_at_load(path: Path) -> list[str]:
    """Modules a file imports when it is loaded: its top-level imports, not lazy or TYPE_CHECKING ones."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        name
        for node in tree.body
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    ]


def test_the_index_interface_and_config_import_no_engine():
    """base.py (the interface every caller holds) and config.py (kinds, parameters, IndexConfig) stand above the
    engines: neither imports engines/ at all, and config.py loads neither FAISS nor the settings (which import it)."""
    found = [
        f"service/index/base.py:{line} imports {module}"
        for line, module in _imports(REPO / "service/index/base.py")
        if _within(module, ("service.index.engines", "faiss", "pymilvus"))
    ]
    found += [
        f"service/index/config.py imports {module}"
        for module in _imported_at_load(REPO / "service/index/config.py")
        if _within(module, ("service.index.engines", "service.settings", "faiss", "pymilvus"))
    ]
    assert not found
    code = "import sys, service.index.config, service.index.base\nprint('faiss' in sys.modules)"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert answer.stdout.strip() == "False"
