"""The tuning journal's lock: a holder that dies here frees it at once; every other holder is waited for as Optuna
waits (plain Optuna and older versions on the same journal included)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from optuna.storages.journal import JournalFileSymlinkLock

from service.object2vec.journal_lock import JournalLock

HOLD = """
import os, signal, sys, time
from optuna.storages.journal import JournalFileSymlinkLock
from service.object2vec.journal_lock import JournalLock
lock = (JournalLock if sys.argv[2] == "ours" else JournalFileSymlinkLock)(sys.argv[1])
lock.acquire()
print("held", flush=True)
if sys.argv[3] == "die":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(600)
"""


def hold(journal: Path, kind: str, then: str) -> subprocess.Popen[str]:
    """A process that takes the lock (ours, or plain Optuna's) and then dies holding it, or keeps holding it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(journal), kind, then], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    if then == "die":
        assert proc.wait(timeout=30) == -9
    return proc


def acquire_in_thread(lock: JournalFileSymlinkLock) -> threading.Event:
    done = threading.Event()
    threading.Thread(target=lambda: (lock.acquire(), done.set()), daemon=True).start()
    return done


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "study.journal"
    path.touch()
    return path


def test_a_dead_holders_lock_is_broken_without_the_grace_period(
    journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = hold(journal, "ours", "die")
    lock_file, note = Path(f"{journal}.lock"), Path(f"{journal}.lock.holder")
    assert lock_file.is_symlink() and note.is_file(), "SIGKILL leaves the link and its note"
    lock = JournalLock(str(journal), grace_period=600)
    with caplog.at_level(logging.WARNING):
        assert acquire_in_thread(lock).wait(timeout=20), "a dead holder on this machine is not waited for"
    assert f"process {proc.pid}, is gone" in caplog.text
    lock.release()
    assert not lock_file.exists() and not lock_file.is_symlink() and not note.exists()


def test_a_live_holder_is_waited_for_until_it_dies(journal: Path) -> None:
    proc = hold(journal, "ours", "hold")
    done = acquire_in_thread(JournalLock(str(journal), grace_period=600))
    try:
        assert not done.wait(timeout=1.5), "the lock of a live holder is not taken"
    finally:
        proc.kill()
        proc.wait()
    assert done.wait(timeout=20), "once the holder dies, the waiting process takes the lock"


def test_plain_optuna_waits_for_this_lock(journal: Path) -> None:
    """The same link as Optuna's: a writer with plain Optuna (or an older version) on the journal still waits."""
    ours = JournalLock(str(journal))
    ours.acquire()
    done = acquire_in_thread(JournalFileSymlinkLock(str(journal)))
    assert not done.wait(timeout=1.0)
    ours.release()
    assert done.wait(timeout=20)


def test_a_holder_without_a_note_gets_the_grace_period(journal: Path) -> None:
    """Plain Optuna leaves no note: its dead holder's lock goes only after the journal has not changed for the grace
    period, as Optuna itself would break it."""
    hold(journal, "optuna", "die")
    start = time.monotonic()
    lock = JournalLock(str(journal), grace_period=3)
    assert acquire_in_thread(lock).wait(timeout=30)
    assert time.monotonic() - start >= 3
    lock.release()


def test_a_note_left_for_another_link_is_not_trusted(journal: Path) -> None:
    """A dead holder's note outlives its link when an older version broke that link; the live lock taken after it
    must not be broken because the note names a dead process."""
    hold(journal, "ours", "die")
    os.unlink(f"{journal}.lock")  # what an older version's grace period does
    plain = JournalFileSymlinkLock(str(journal))
    plain.acquire()
    done = acquire_in_thread(JournalLock(str(journal), grace_period=600))
    assert not done.wait(timeout=1.5), "the note is for a link that is gone"
    plain.release()
    assert done.wait(timeout=20)


def test_a_note_that_cannot_be_written_leaves_optunas_lock_working(journal: Path) -> None:
    """Writing the note may fail (a full disk; here its path is taken by a folder): the lock is still taken and
    released, and waiters give it Optuna's grace period."""
    Path(f"{journal}.lock.holder").mkdir()
    lock = JournalLock(str(journal))
    lock.acquire()
    assert Path(f"{journal}.lock").is_symlink()
    lock.release()
    assert not Path(f"{journal}.lock").is_symlink()
    plain = JournalFileSymlinkLock(str(journal))
    plain.acquire()
    plain.release()
