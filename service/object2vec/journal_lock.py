"""The lock on a tuning study's journal: Optuna's, plus a note of who holds it, so a dead holder's goes at once.

Optuna's `JournalFileSymlinkLock` makes `<journal>.lock` a symbolic link while a process appends to the journal. A
process killed meanwhile (a lost machine, Ctrl-\\, the OOM killer) leaves the link behind, and every later writer waits
out a 30 s grace period before breaking it: `o2v tune --resume` after such a kill sat for 30 s, warning twice.

This lock keeps Optuna's protocol whole: the same link, the same wait, the same grace period, so older versions and
plain Optuna writing the same journal (on a shared filesystem too) still exclude each other. Its holder also writes
`<journal>.lock.holder`: where it runs (host, boot, PID namespace), its PID and which link it made (inode and change
time). A waiter where that PID means the same process breaks the lock as soon as the process is gone; any other
holder, one on another machine included, still gets the grace period. Waiters break under an `flock` on the journal,
so two of them cannot both break one dead holder's lock and take away the lock the first then made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from functools import cache
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

from service.processes import pid_alive

LOG = logging.getLogger(__name__)
WARN_EVERY_S = 10.0
"""Optuna's interval between "still waiting" warnings."""


@cache
def _place() -> str | None:
    """Where a PID names one process: this host, this boot and this PID namespace; None where that cannot be read."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{socket.gethostname()} {boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


class JournalLock(JournalFileSymlinkLock):
    """`JournalFileSymlinkLock` whose holder says who it is; `JournalFileBackend(path, lock_obj=JournalLock(path))`."""

    def __init__(self, filepath: str, grace_period: int = 30) -> None:
        super().__init__(filepath, grace_period)
        self._holder = Path(self._lock_file + ".holder")

    def acquire(self) -> bool:
        """Optuna's loop (link, else wait with back-off and break a link the journal has not moved under for the
        grace period), which also breaks at once a link whose holder has died here."""
        pause, mtime = 0.001, None
        moved = warned = time.monotonic()
        while True:
            try:
                os.symlink(self._lock_target_file, self._lock_file)
            except FileExistsError:
                pass
            else:
                try:
                    self._sign()
                except OSError:
                    pass  # no note (a full disk): waiters give this lock the grace period, as Optuna's
                except BaseException:
                    self.release()
                    raise
                return True
            if self._break_dead():
                continue
            now = time.monotonic()
            if now - warned > WARN_EVERY_S:
                LOG.warning("waiting for the journal lock %s held by %s", self._lock_file, self._read_holder())
                warned = now
            try:
                current = os.stat(self._lock_file).st_mtime
            except OSError:
                continue
            if current != mtime:
                mtime, moved = current, now
            elif self.grace_period is not None and now - moved > self.grace_period:
                LOG.warning("%s: the journal has not changed for %d s, breaking it", self._lock_file, self.grace_period)
                self._break()
                pause = 0.001
                continue
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def release(self) -> None:
        """The note goes first: a link without one gets the grace period, and a note left without its link is not
        trusted (it names another link)."""
        with contextlib.suppress(OSError):
            self._holder.unlink(missing_ok=True)
        super().release()

    def _sign(self) -> None:
        """Write the note. A waiter that reads it half-written, or before it exists, waits as Optuna's would."""
        link = os.lstat(self._lock_file)
        note = {"place": _place(), "pid": os.getpid(), "link": [link.st_ino, link.st_ctime_ns]}
        self._holder.write_text(json.dumps(note))

    def _read_holder(self) -> dict[str, object]:
        try:
            note = json.loads(self._holder.read_text())
        except (OSError, ValueError):
            return {}
        return note if isinstance(note, dict) else {}

    def _dead_holder(self) -> int | None:
        """The PID the note names when the note is for the link there now, was written here, and that process is
        gone; None otherwise."""
        note = self._read_holder()
        try:
            link = os.lstat(self._lock_file)
        except OSError:  # released meanwhile
            return None
        pid = note.get("pid")
        if note.get("place") != _place() or note.get("link") != [link.st_ino, link.st_ctime_ns]:
            return None
        return pid if isinstance(pid, int) and not pid_alive(pid) else None

    def _break_dead(self) -> bool:
        """Break the lock if its holder died here. Asked first without the flock, so that waiting on a live holder
        (the common case) opens no journal; asked again under it, so that two waiters cannot both break one lock."""
        if _place() is None or self._dead_holder() is None:
            return False
        try:
            with open(self._lock_target_file, "ab") as journal:
                fcntl.flock(journal, fcntl.LOCK_EX)  # released when the file closes, or its process dies
                pid = self._dead_holder()
                if pid is None:
                    return False
                LOG.warning("%s: its holder, process %d, is gone; breaking it", self._lock_file, pid)
                self._break()
                return True
        except OSError:  # this filesystem has no flock: the grace period decides
            return False

    def _break(self) -> None:
        with contextlib.suppress(RuntimeError):  # another waiter broke it first
            self.release()
