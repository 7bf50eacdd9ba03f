"""Process facts shared by rooms that clean up after a dead writer (FAISS snapshot temp files, tuning trials)."""

from __future__ import annotations

import os


def pid_alive(pid: object) -> bool:
    """Whether a process with this id runs on this machine; anything but an int is taken for a dead one. A process
    we may not signal (another user's) is alive."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
