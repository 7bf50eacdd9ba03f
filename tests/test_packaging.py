"""`pip install .` (a real wheel, not editable) into a fresh virtual environment, then `o2v serve` from a directory
that has nothing to do with the checkout: the bundled model comes with the package, the data directory is one its
user can write to (never site-packages), and the wheel holds the service alone: no test fixtures, benchmarks or
load-test tooling."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from service.settings import REPO
from tests.server_process import ServerProcess, free_port

BIN = "Scripts" if os.name == "nt" else "bin"


TOOLS = ("tests", "bench", "loadtests")
"""The checkout's tools beside the package: they stay out of the wheel."""


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the sources pip would see, the tools beside the package included (no build/ leftovers,
    nothing written into the checkout); built offline with this environment's setuptools where it has one (Python
    3.12+ venvs do not: pip fetches it)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("service", *TOOLS):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), "."]
    subprocess.run(command, cwd=src, check=True, timeout=300)
    (wheel,) = out.glob("object2vec_service-*.whl")
    return wheel


def fresh_venv(folder: Path) -> Path:
    """A new environment without pip whose only extra path is this one's site-packages (the dependencies, reused
    rather than downloaded); its own site-packages comes first, so `service` is the wheel's, not the checkout's."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / BIN / ("python.exe" if os.name == "nt" else "python")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "o2v-test-dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return python


@pytest.fixture
def outside_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No O2V_* settings, no PYTHONPATH to the checkout, a home of its own, and a working directory elsewhere."""
    for name in list(os.environ):
        if name.startswith("O2V_") or name in ("PYTHONPATH", "XDG_DATA_HOME", "LOCALAPPDATA"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("LOCALAPPDATA", str(home / "data"))
    monkeypatch.setenv("O2V_ONNX_INTRA_OP_THREADS", "1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return home / "data" / "o2v"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


def test_the_wheel_holds_the_service_and_no_test_bench_or_load_test_tooling(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {name: archive.read(name).decode() for name in names if name.endswith(".py")}
        (entry_points,) = [archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")]
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"service"}
    assert "service/model/bundled/object2vec-sts-384/encoder.onnx" in names
    assert "service/cli.py" in sources and "service/api/server.py" in sources  # `o2v serve` ships
    assert not [n for n in names if n.startswith(("service/tools/", *(f"{t}/" for t in TOOLS)))]
    assert not [n for n in names if "loadtest" in n or "locust" in n or "server_process" in n]
    assert not [n for n, text in sources.items() if "class ServerProcess" in text or "import locust" in text]
    assert [line.replace(" ", "") for line in entry_points.splitlines() if "=" in line] == ["o2v=service.cli:main"]


def test_the_installed_wheel_serves_the_bundled_model_from_anywhere(
    wheel: Path, tmp_path: Path, outside_env: Path
) -> None:
    python = fresh_venv(tmp_path / "venv")
    install = ["--python", str(python), "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)]
    subprocess.run([sys.executable, "-m", "pip", *install], check=True, timeout=300)
    o2v = tmp_path / "venv" / BIN / "o2v"

    where = subprocess.run(
        [str(python), "-c", "import service.settings as s; print(s.DEFAULT_MODEL_DIR)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(tmp_path / "venv"), where  # the wheel's copy, not the checkout's
    assert (Path(where) / "encoder.onnx").is_file()

    usage = subprocess.run([str(o2v), "serve", "--help"], check=True, capture_output=True, text=True).stdout
    assert str(outside_env) in usage and "foreground" in usage

    port = free_port()
    command = [str(o2v), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with ServerProcess(command=command, port=port) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post("/embed", json={"texts": ["hello from an installed wheel"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["dim"] == 384 and answer.json()["model"] == "object2vec-sts-384"
        assert http.put("/collections/notes", json={}).status_code == 201
    assert (outside_env / "notes").is_dir()  # the user's data directory, not site-packages/indexes
    assert not Path("indexes").exists()
