"""Storage failures as the user sees them: a damaged file or a full disk becomes one error that
names the index folder and says what to do, never a traceback.

SQLite reports a full disk as SQLITE_FULL, but a write refused by the file size limit
(`ulimit -f`), or a shared-memory file it could not grow, only as an I/O error: such an error
counts as "no room" when the disk is (nearly) full or a size limit is set. Damage found mid-query
(a truncated or overwritten page) becomes IndexCorruptError. OperationalError of other kinds
(locked, I/O on a healthy disk) is left alone: the index itself may be fine.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import sqlite3
from pathlib import Path

from core.errors import IndexCorruptError, StorageFullError

_SQLITE_IOERR, _SQLITE_FULL = 10, 13
_NEARLY_FULL = 1 << 20  # bytes free below which an I/O error is put down to a full disk


def no_room(exc: BaseException, db_dir: Path) -> str | None:
    """Why a write found no room (the disk is full, the quota used up, a file at its size limit),
    or None when `exc` is some other failure."""
    if isinstance(exc, OSError):
        if exc.errno == errno.EFBIG:
            return _size_limit() or "a file reached the largest size this file system allows"
        return {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}.get(exc.errno)
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", 0)
        if code == _SQLITE_FULL:
            return _disk_full(db_dir) or _size_limit() or "the disk is full"
        if code & 0xFF == _SQLITE_IOERR:
            return _disk_full(db_dir) or _size_limit()
    return None


def _disk_full(db_dir: Path) -> str | None:
    try:
        st = os.statvfs(db_dir)
    except OSError:
        return None
    return "the disk is full" if st.f_bavail * st.f_frsize < _NEARLY_FULL else None


def _size_limit() -> str | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else f"a file reached this process's file size limit (ulimit -f: {soft} bytes)"


def storage_full(db_dir: Path, why: str, reading: bool) -> StorageFullError:
    fix = "raise the limit (ulimit -f unlimited)" if "ulimit" in why else "free some space"
    if reading:
        return StorageFullError(f"cannot read the index at {db_dir}: {why}, and SQLite needs a few KB beside it to read — {fix}")
    if "ulimit" not in why:
        fix += " or choose a --db directory on another disk"
    return StorageFullError(
        f"no room to write the index at {db_dir}: {why} — {fix}, then run again (batches committed before this are kept)"
    )


def damaged(path: Path, exc: BaseException) -> IndexCorruptError:
    return IndexCorruptError(f"{path} cannot be read ({exc}) — the index is damaged; rebuild it into a new --db directory")


def storage_errors(method):
    """For methods of an object with `dir` (the index folder), `sqlite_path` and `writable`:
    no room → StorageFullError, a damaged database → IndexCorruptError."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.OperationalError, OSError) as exc:
            if (why := no_room(exc, self.dir)) is None:
                raise
            raise storage_full(self.dir, why, reading=not self.writable) from exc
        except sqlite3.DatabaseError as exc:
            raise damaged(self.sqlite_path, exc) from exc

    return wrapper


def no_room_on_open(reading: bool):
    """For classmethods `open*(cls, db_dir, ...)`: no room → StorageFullError (see `storage_errors`)."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(cls, db_dir, *args, **kwargs):
            try:
                return method(cls, db_dir, *args, **kwargs)
            except (sqlite3.OperationalError, OSError) as exc:
                if (why := no_room(exc, Path(db_dir))) is None:
                    raise
                raise storage_full(Path(db_dir), why, reading) from exc

        return wrapper

    return decorate
