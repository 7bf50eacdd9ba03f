"""How often a tuning journal's lock outlives a killed writer: a process appending to a journal without pause is
SIGKILLed at a random moment, then another takes the lock. With Optuna's own lock every kill that lands while the lock
is held costs the grace period (30 s); with `JournalLock` none should, since its lock never stands without its
holder's name. Also counts the names a kill leaves beside the journal once the next holder has taken the lock.

    python -m bench.journal_lock [--kills 100]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileSymlinkLock

from bench.tables import print_table
from service.object2vec.journal_lock import JournalLock
from service.settings import REPO

WRITER = """
import sys
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from service.object2vec.journal_lock import JournalLock
path = sys.argv[1]
lock = (JournalLock if sys.argv[2] == "JournalLock" else JournalFileSymlinkLock)(path)
backend = JournalFileBackend(path, lock_obj=lock)
step = 0
while True:
    backend.append_logs([{"op_code": 0, "worker_id": "bench", "step": step}])
    step += 1
"""
AT_ONCE_S = 2.0
"""A lock taken within this long after the kill was broken at once; Optuna's grace period is 30 s."""
LOCKS = {"JournalLock": JournalLock, "JournalFileSymlinkLock": JournalFileSymlinkLock}


def kill_and_take(folder: Path, kind: str, index: int) -> tuple[bool, bool, int]:
    """One writer killed at random: whether it held the lock, whether the next holder waited, names left after."""
    journal = folder / f"{index}.journal"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(journal), kind], cwd=REPO)
    while not journal.exists():
        time.sleep(0.01)
    time.sleep(random.uniform(0.05, 0.3))
    writer.kill()
    writer.wait()
    held = os.path.lexists(f"{journal}.lock")
    lock = LOCKS[kind](str(journal))
    taken = threading.Event()

    def take() -> None:
        lock.acquire()
        taken.set()

    threading.Thread(target=take, daemon=True).start()
    waited = not taken.wait(AT_ONCE_S)
    if not waited:
        lock.release()
    left = len(list(folder.glob(f"{journal.name}.lock.*")))
    return held, waited, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="writers killed per lock (default 100)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the abandoned waiters' "still waiting" lines
    rows = []
    # the abandoned waiters on Optuna's locks still break them (after its grace period) while the folder goes
    with tempfile.TemporaryDirectory(prefix="o2v-bench-journal-lock-", ignore_cleanup_errors=True) as tmp:
        for kind in LOCKS:
            folder = Path(tmp) / kind
            folder.mkdir()
            runs = [kill_and_take(folder, kind, i) for i in range(args.kills)]
            held = [r for r in runs if r[0]]
            rows.append(
                {
                    "lock": kind,
                    "kills": len(runs),
                    "held": len(held),
                    "waited": sum(r[1] for r in held),
                    "names_left": sum(r[2] for r in runs if not r[1]),
                }
            )
    print_table(
        rows,
        [
            ("lock", "lock"),
            ("kills", "writers killed"),
            ("held", "lock held at the kill"),
            ("waited", f"next holder waited > {AT_ONCE_S:g} s"),
            ("names_left", "holder names left"),
        ],
    )
    print(json.dumps({"bench": "journal_lock", "rows": rows}))


if __name__ == "__main__":
    main()
