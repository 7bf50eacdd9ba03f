"""Process facts shared by rooms that clean up after a dead writer (FAISS snapshot temp files, tuning trials), and
the way a command's process ends."""

from __future__ import annotations

import gc
import os
import sys
from typing import NoReturn


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


def exit_process(code: int) -> NoReturn:
    """End a command's process once its work is done and written. The interpreter's shutdown runs full garbage
    collections over every object the process holds, which with torch, onnx and optuna loaded cost 0.5-1 CPU-s
    (a training job, an `o2v tune` run; 0.2 s for a server) for memory the process returns anyway; frozen objects
    are left out of them. Everything else about the exit stays: atexit handlers run, objects die by reference
    count as their modules are cleared, stdout and stderr are flushed."""
    gc.freeze()
    sys.exit(code)
