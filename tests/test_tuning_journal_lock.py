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


def names(journal: Path) -> list[Path]:
    """The holders' names of the journal's lock (`<journal>.lock.<place>.<pid>.<nonce>`)."""
    return sorted(journal.parent.glob(f"{journal.name}.lock.*"))


def test_a_dead_holders_lock_is_broken_without_the_grace_period(
    journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = hold(journal, "ours", "die")
    lock_file = Path(f"{journal}.lock")
    [name] = names(journal)
    assert lock_file.is_symlink() and os.path.samefile(lock_file, journal), "Optuna's link to the journal"
    assert os.lstat(lock_file).st_ino == os.lstat(name).st_ino, "SIGKILL leaves the link under its holder's name"
    assert f".{proc.pid}." in name.name
    lock = JournalLock(str(journal), grace_period=600)
    with caplog.at_level(logging.WARNING):
        assert acquire_in_thread(lock).wait(timeout=20), "a dead holder on this machine is not waited for"
    assert f"{name.name} is gone" in caplog.text
    lock.release()
    assert not lock_file.exists() and not lock_file.is_symlink() and names(journal) == []


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


def test_a_name_left_without_its_lock_is_not_trusted(journal: Path) -> None:
    """A dead holder's name outlives its lock when plain Optuna broke that lock; the live lock taken after it must not
    be broken because a name beside it gives a dead process."""
    hold(journal, "ours", "die")
    os.unlink(f"{journal}.lock")  # what plain Optuna's grace period does
    plain = JournalFileSymlinkLock(str(journal))
    plain.acquire()
    done = acquire_in_thread(JournalLock(str(journal), grace_period=600))
    assert not done.wait(timeout=1.5), "the note is for a link that is gone"
    plain.release()
    assert done.wait(timeout=20)


def test_names_left_by_killed_processes_go_at_the_next_lock(journal: Path) -> None:
    """A process killed between making its name and the lock, or between releasing the lock and its name, leaves a
    name that no lock shares: the next holder removes those of dead processes here, never a live one's."""
    hold(journal, "ours", "die")
    os.unlink(f"{journal}.lock")
    [dead] = names(journal)
    place = dead.name.split(".")[-3]
    live = journal.parent / f"{journal.name}.lock.{place}.{os.getpid()}.0123abcd"
    os.symlink(journal, live)
    lock = JournalLock(str(journal), grace_period=600)
    lock.acquire()
    assert not dead.is_symlink() and live.is_symlink()
    lock.release()
    assert names(journal) == [live]


def test_where_no_hard_link_can_be_made_the_lock_is_optunas(journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without hard links (EPERM from link()): the lock is Optuna's own link, taken and released, and
    given the grace period like plain Optuna's."""

    def no_hard_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    lock = JournalLock(str(journal))
    lock.acquire()
    assert Path(f"{journal}.lock").is_symlink() and os.lstat(f"{journal}.lock").st_nlink == 1
    assert names(journal) == []
    lock.release()
    assert not Path(f"{journal}.lock").is_symlink()
    plain = JournalFileSymlinkLock(str(journal))
    plain.acquire()
    plain.release()
