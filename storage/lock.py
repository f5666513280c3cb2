"""One writer per index: an exclusive `flock` on `write.lock`, holding the writer's pid.

Readers never take it; they only ask whether it is held (an index run in progress is normal,
not a reason to warn that the vectors are behind).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from core.errors import IndexBusyError

LOCK_NAME = "write.lock"


def take_write_lock(db_dir: Path) -> int:
    """The lock's file descriptor (close it to let go); IndexBusyError naming the holder's pid."""
    fd = os.open(db_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    patience = time.monotonic() + 0.5  # a reader asking whether a run is in progress holds it for an instant
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < patience:
                time.sleep(0.01)
                continue
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise IndexBusyError(
                f"another `xlsearch index` run (pid {holder}) is writing to {db_dir} — wait for it to finish, then run again"
            ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)  # fails on a full disk: then let go of the lock
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_lock_held(db_dir: Path) -> bool:
    return flock_held(db_dir / LOCK_NAME)


def flock_held(path: Path) -> bool:
    """Whether some process holds a flock on `path` (ours or another engine's, like Milvus Lite's)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
