"""The drift monitor's state on disk: one JSON file under data_dir/.o2v/drift/, replaced atomically.

The service's own state lives under a dot folder because collections live in data_dir/<name> and a collection name
([A-Za-z0-9_-]) never has a dot, so no collection route can reach it. A state file in data_dir/drift/, where
`DELETE /collections/drift` would delete it, is moved there once by `DriftStore.in_data_dir`, leaving any
collection files behind.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from service.durable import fsync_path

STATE_VERSION = 1
STATE_DIR = Path(".o2v") / "drift"
COLLECTION_DIR = Path("drift")  # where a collection named drift lives
STATE_FILE = "state.json"

log = logging.getLogger("service.drift")


class DriftStore:
    """Writes go to a temporary file in the same folder, fsync, then rename: a crash leaves old or new, never half."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STATE_FILE

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> DriftStore:
        """The store of a data directory, after moving a state file out of data_dir/drift if there is one."""
        store = cls(Path(data_dir) / STATE_DIR)
        exposed = Path(data_dir) / COLLECTION_DIR
        if (exposed / STATE_FILE).is_file() and not store.path.exists():
            store.folder.mkdir(parents=True, exist_ok=True)
            os.replace(exposed / STATE_FILE, store.path)  # same file system: atomic
            fsync_path(store.folder)
            for tmp in exposed.glob(".state-*.json"):  # half-written leftovers of a crash
                tmp.unlink(missing_ok=True)
            if not any(exposed.iterdir()):
                exposed.rmdir()  # it held only the drift state; a collection named drift keeps its folder
            log.info(json.dumps({"event": "drift_state_moved", "from": str(exposed), "to": str(store.folder)}))
        elif (exposed / STATE_FILE).is_file():
            log.warning(json.dumps({"event": "drift_state_ignored", "path": str(exposed / STATE_FILE)}))
        return store

    def load(self) -> dict[str, Any]:
        """The saved state, or {} without one. A file that is no state of this version (truncated, empty, another
        JSON type, version 2) is set aside (`set_aside`), so a damaged state never stops the service."""
        if not self.path.is_file():
            return {}
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                raise ValueError(f"a JSON {type(state).__name__}, not an object")
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"unknown drift state version {state.get('version')!r}")
        except (UnicodeDecodeError, ValueError) as exc:
            self.set_aside(str(exc))
            return {}
        return state

    def set_aside(self, reason: str) -> Path | None:
        """Rename the state file to state.json.damaged-<time> (kept for a look, never read again) and log a warning
        naming both; the monitor then starts without it. Returns the new name (None if the rename failed too)."""
        aside = self.path.with_name(f"{STATE_FILE}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            log.warning(
                json.dumps(
                    {
                        "event": "drift_state_damaged",
                        "path": str(self.path),
                        "reason": reason,
                        "set_aside": None,
                        "error": str(exc),
                    }
                )
            )
            return None
        log.warning(
            json.dumps(
                {
                    "event": "drift_state_damaged",
                    "path": str(self.path),
                    "reason": reason,
                    "set_aside": str(aside),
                    "action": "starting without it",
                }
            )
        )
        return aside

    def save(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as fh:  # dumps, not dump: only a whole document gets json's C encoder (2.4x)
                fh.write(json.dumps({"version": STATE_VERSION, **state}, separators=(",", ":")))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_path(self.folder)
