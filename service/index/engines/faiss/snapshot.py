"""FAISS snapshot files: one .npz holding the index, its tombstones and the change seq it covers, written atomically."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from service.durable import fsync_path
from service.processes import pid_alive

HEADER = "header"


def write_temp(path: Path, arrays: dict[str, np.ndarray], header: dict) -> Path:
    """Write the snapshot beside `path` under a temporary name and fsync it; `publish` makes it the snapshot."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    try:
        with open(tmp, "wb") as fh:
            members: dict[str, Any] = {**arrays, HEADER: blob}  # typed loosely: no name is savez's allow_pickle
            np.savez(fh, **members)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half snapshot taking the space
        raise
    return tmp


def remove_orphans(path: Path) -> None:
    """Delete temporary snapshots left by processes that died while writing them."""
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 1 : -len(".tmp")]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def publish(tmp: Path, path: Path) -> None:
    """Rename over `path` and fsync the folder: readers see the old snapshot or the new one, never half of one."""
    os.replace(tmp, path)
    fsync_path(path.parent)


def read(path: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(header, arrays), or None when there is no readable snapshot (the zip CRC catches a damaged file)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        header = json.loads(arrays.pop(HEADER).tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return header, arrays
