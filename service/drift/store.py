"""The drift monitor's state on disk: one JSON file under data_dir/drift/, replaced atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_VERSION = 1


class DriftStore:
    """Writes go to a temporary file in the same folder, fsync, then rename: a crash leaves old or new, never half."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "state.json"

    def load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        state = json.loads(self.path.read_text())
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.path}: unknown drift state version {state.get('version')!r}")
        return state

    def save(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": STATE_VERSION, **state}, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
