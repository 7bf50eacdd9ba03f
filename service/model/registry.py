"""The models a server can serve side by side: the configured one (bundled, or a SageMaker endpoint) and the adapted
model directories under the data directory (`.o2v/models/NAME`, out of reach of any collection name).

A model's name is its folder's name (`[A-Za-z0-9_-]{1,64}`: no dots or slashes, so no path tricks; not a route's
segment such as `adapt`). The default model is `default_model` in `.o2v/models/default.json` (written atomically by
`promote`, which also records the previous default, so rollback is promoting that one), else the configured model.
An export writes `.partial-*` folders and renames them into place, so a folder without a leading dot is always
complete; a partial left by a killed job is removed when its writer is dead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.model.model_dir import ModelDir
from service.processes import pid_alive

MODEL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
RESERVED_NAMES = frozenset({"adapt"})
"""Literal path segments right under /models/ and /v1/models/ (POST /models/adapt): a model so named would share
its path with that route (DELETE /models/adapt), so no new model may take one. tests/test_models_api.py checks this
set against the app's routes."""
STATE = Path(".o2v") / "models"
DEFAULT_FILE = "default.json"


class ModelNameError(ValueError):
    """A model name with characters outside [A-Za-z0-9_-] or longer than 64 (the API answers 422)."""


class UnknownModel(LookupError):
    """No model of that name (404 model_not_found)."""


class ModelConflict(RuntimeError):
    """A name taken, or a model that cannot be removed or promoted now (409)."""


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name):
        raise ModelNameError(f"model name must match {MODEL_NAME_RE.pattern} (no dots, slashes, spaces): {name!r}")
    if name in RESERVED_NAMES:
        routes = ", ".join(f"/models/{n}" for n in sorted(RESERVED_NAMES))
        raise ModelNameError(f"the model name {name!r} is reserved: it is a route's path segment ({routes})")
    return name


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry: its name, where it lives, and what kind it is (configured or adapted)."""

    name: str
    kind: str  # "configured" (the served model dir or a SageMaker endpoint) | "adapted"
    path: Path | None

    def card(self) -> dict[str, Any]:
        if self.path is None or not (self.path / "model_card.json").is_file():
            return {}
        return json.loads((self.path / "model_card.json").read_text())


class ModelRegistry:
    """Adapted models in `data_dir/.o2v/models` beside the configured model named `configured`."""

    def __init__(self, data_dir: Path, configured: str, configured_path: Path | None, default: str | None = None):
        self.root = Path(data_dir) / STATE
        self.configured = ModelEntry(configured, "configured", configured_path)
        self.setting_default = default or configured

    def _adapted_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".partial-"):
                self._remove_stale_partial(path)
            elif path.is_dir() and MODEL_NAME_RE.fullmatch(path.name) and (path / "model_card.json").is_file():
                out.append(path)
        return out

    @staticmethod
    def _remove_stale_partial(path: Path) -> None:
        pid = path.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and pid_alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)

    def entries(self) -> list[ModelEntry]:
        adapted = [ModelEntry(p.name, "adapted", p) for p in self._adapted_dirs() if p.name != self.configured.name]
        return [self.configured, *adapted]

    def get(self, name: str) -> ModelEntry:
        if name == self.configured.name:
            return self.configured
        if MODEL_NAME_RE.fullmatch(name or ""):
            path = self.root / name
            if path.is_dir() and (path / "model_card.json").is_file():
                return ModelEntry(name, "adapted", path)
        known = ", ".join(repr(e.name) for e in self.entries())
        raise UnknownModel(f"no model named {name!r}; models: {known}")

    def model_dir(self, name: str) -> ModelDir:
        entry = self.get(name)
        if entry.path is None:
            raise UnknownModel(f"{name!r} is a SageMaker endpoint, not a model directory")
        return ModelDir.load(entry.path)

    def target(self, name: str) -> Path:
        """Where a new adapted model `name` will be exported; a taken name is a conflict."""
        check_model_name(name)
        if name == self.configured.name or (self.root / name).exists():
            raise ModelConflict(f"the model name {name!r} is taken; choose another or remove it first")
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / name

    def _state(self) -> dict[str, Any]:
        path = self.root / DEFAULT_FILE
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return dict(json.loads(path.read_text()))
        return {}

    def default(self) -> str:
        """The promoted model while it still exists, else the setting's."""
        name = self._state().get("default_model")
        if isinstance(name, str):
            with contextlib.suppress(UnknownModel):
                return self.get(name).name
        return self.setting_default

    def promote(self, name: str) -> dict[str, Any]:
        """Make `name` the default (one atomic file replace); returns the new state with the previous default."""
        self.get(name)
        previous = self.default()
        state = {
            "default_model": name,
            "previous": previous,
            "promoted_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{DEFAULT_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.root / DEFAULT_FILE)
        return state

    def remove(self, name: str) -> None:
        entry = self.get(name)
        if entry.kind != "adapted" or entry.path is None:
            raise ModelConflict(f"{name!r} is the configured model; only adapted models can be removed")
        if self.default() == name:
            raise ModelConflict(f"{name!r} is the default model; promote another one first")
        trash = self.root / f".partial-removing-{name}-{os.getpid()}"
        os.replace(entry.path, trash)  # gone from the registry at once, deleted after
        shutil.rmtree(trash, ignore_errors=True)


def openai_model(entry: ModelEntry, default: str) -> dict[str, Any]:
    """OpenAI's model object, plus what this service knows of it (kind, default, parent, evaluation)."""
    card = entry.card()
    created = card.get("created")
    try:
        stamp = int(dt.datetime.strptime(str(created), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
    except (TypeError, ValueError):
        stamp = 0
    out: dict[str, Any] = {
        "id": entry.name,
        "object": "model",
        "created": stamp,
        "owned_by": "object2vec-service",
        "kind": entry.kind,
        "default": entry.name == default,
    }
    if entry.path is not None and (entry.path / "hyperparameters.json").is_file():
        model = ModelDir.load(entry.path)
        out.update(
            dim=model.hp.enc_dim,
            max_seq_len=model.max_seq_len("in0"),
            backend="onnx",
            output_layer=model.hp.output_layer,
            scorer=model.scorer_file is not None,
            metrics=card.get("metrics", {}),
        )
    lineage = card.get("lineage")
    if lineage:
        out["parent"] = lineage.get("parent")
        out["evaluation"] = card.get("evaluation")
    return out
