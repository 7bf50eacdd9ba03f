"""The lock on a tuning study's journal: Optuna's, made under a name that says who holds it, so a dead holder's goes
at once.

Optuna's `JournalFileSymlinkLock` makes `<journal>.lock` a symbolic link while a process appends to the journal. A
process killed meanwhile (a lost machine, Ctrl-\\, the OOM killer) leaves the link behind, and every later writer waits
out a 30 s grace period before breaking it: `o2v tune --resume` after such a kill sat for 30 s, warning twice.

This lock keeps Optuna's protocol whole: the same link to the journal, the same wait, the same grace period, so older
versions and plain Optuna writing the same journal (on a shared filesystem too) still exclude each other. Its holder
first makes the symbolic link under a name of its own, `<journal>.lock.<place>.<pid>.<nonce>` (place: a digest of the
host, boot and PID namespace), then makes `<journal>.lock` a hard link of it. That `link()` is atomic and refuses an
existing lock, so the lock never stands without the name of its holder: a holder killed at any moment is known.
A waiter where that PID means the same process breaks the lock as soon as the process is gone; any other holder, one
on another machine or plain Optuna's (whose link has no second name) included, still gets the grace period. Waiters
break under an `flock` on the journal, so two of them cannot both break one dead holder's lock and take away the lock
the first then made. Where no hard link can be made, the lock is Optuna's own link and gets the grace period.

Before (a note file written after the link, removed before it), a continuous writer killed at random times left about
1 held lock in 5 to the grace period (`python -m bench.journal_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import time
import uuid
from functools import cache
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

from service.processes import pid_alive

LOG = logging.getLogger(__name__)
WARN_EVERY_S = 10.0
"""Optuna's interval between "still waiting" warnings."""


@cache
def _place() -> str | None:
    """Where a PID names one process (this host, this boot and this PID namespace), as a digest that fits a file
    name; None where that cannot be read."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        where = f"{socket.gethostname()} {boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None
    return hashlib.sha256(where.encode()).hexdigest()[:16]


class JournalLock(JournalFileSymlinkLock):
    """`JournalFileSymlinkLock` whose link carries its holder's name; `JournalFileBackend(path,
    lock_obj=JournalLock(path))`."""

    def __init__(self, filepath: str, grace_period: int = 30) -> None:
        super().__init__(filepath, grace_period)
        self._folder = Path(self._lock_file).parent
        self._prefix = Path(self._lock_file).name + "."
        self._name: Path | None = None
        self._swept = False

    def acquire(self) -> bool:
        """Optuna's loop (link, else wait with back-off and break a link the journal has not moved under for the
        grace period), which also breaks at once a link whose holder has died here."""
        pause, mtime = 0.001, None
        moved = warned = time.monotonic()
        while True:
            if self._link():
                if not self._swept:
                    self._sweep()
                return True
            if self._break_dead():
                continue
            now = time.monotonic()
            if now - warned > WARN_EVERY_S:
                holder = self._holder()
                LOG.warning(
                    "waiting for the journal lock %s held by %s", self._lock_file, holder[0].name if holder else "?"
                )
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
        """Optuna's release (the link renamed away, then removed), then this holder's own name of it: a kill between
        the two leaves a name that no lock shares, which nobody trusts."""
        name, self._name = self._name, None
        try:
            super().release()
        finally:
            if name is not None:
                with contextlib.suppress(OSError):
                    name.unlink()

    def _link(self) -> bool:
        """Take the lock if it is free: the link under this holder's name, then the lock as a hard link of it."""
        place = _place()
        if place is None:
            return self._plain_link()
        name = self._folder / f"{self._prefix}{place}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            os.symlink(self._lock_target_file, name)
        except OSError:
            return self._plain_link()
        try:
            os.link(name, self._lock_file, follow_symlinks=False)
        except OSError as error:
            name.unlink(missing_ok=True)
            return False if isinstance(error, FileExistsError) else self._plain_link()
        except BaseException:
            name.unlink(missing_ok=True)
            raise
        self._name = name
        return True

    def _plain_link(self) -> bool:
        """Optuna's own link, for a place or filesystem where the holder's name cannot be made: the grace period
        applies to it."""
        try:
            os.symlink(self._lock_target_file, self._lock_file)
        except FileExistsError:
            return False
        return True

    def _names(self) -> list[tuple[os.DirEntry[str], str, int]]:
        """Every holder's name beside the journal, with the place and PID it gives."""
        names = []
        with contextlib.suppress(OSError), os.scandir(self._folder) as entries:
            for entry in entries:
                parts = entry.name[len(self._prefix) :].split(".")
                if entry.name.startswith(self._prefix) and len(parts) == 3 and parts[1].isdigit():
                    names.append((entry, parts[0], int(parts[1])))
        return names

    def _holder(self) -> tuple[Path, str, int] | None:
        """The lock's other name, with the place and PID it gives; None for a lock without one (plain Optuna's, or
        released meanwhile)."""
        try:
            lock = os.lstat(self._lock_file)
        except OSError:
            return None
        if lock.st_nlink < 2:
            return None
        for entry, place, pid in self._names():
            with contextlib.suppress(OSError):
                if (entry.inode(), entry.stat(follow_symlinks=False).st_dev) == (lock.st_ino, lock.st_dev):
                    return Path(entry.path), place, pid
        return None

    def _sweep(self) -> None:
        """Remove the names that processes killed here between making their name and the lock, or between releasing
        the lock and their name, left behind; once a lock object, by a holder (no name then belongs to a lock)."""
        self._swept = True
        for entry, place, pid in self._names():
            if place == _place() and Path(entry.path) != self._name and not pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _dead_holder(self) -> Path | None:
        """The name of the lock's holder when it was made here and that process is gone; None otherwise."""
        holder = self._holder()
        if holder is None:
            return None
        name, place, pid = holder
        return name if place == _place() and not pid_alive(pid) else None

    def _break_dead(self) -> bool:
        """Break the lock if its holder died here. Asked first without the flock, so that waiting on a live holder
        (the common case) opens no journal; asked again under it, so that two waiters cannot both break one lock."""
        if self._dead_holder() is None:
            return False
        try:
            with open(self._lock_target_file, "ab") as journal:
                fcntl.flock(journal, fcntl.LOCK_EX)  # released when the file closes, or its process dies
                name = self._dead_holder()
                if name is None:
                    return False
                LOG.warning("%s: its holder %s is gone; breaking it", self._lock_file, name.name)
                self._break()
                name.unlink(missing_ok=True)
                return True
        except OSError:  # this filesystem has no flock: the grace period decides
            return False

    def _break(self) -> None:
        with contextlib.suppress(RuntimeError):  # another waiter broke it first
            super().release()
