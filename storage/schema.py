"""The index database's file and schema: connecting, creating one atomically, checking one.

A new database is built beside its final name and renamed into place, so a run killed while
creating it leaves either no index or a complete empty one, never half a schema.
"""

from __future__ import annotations

import os
import sqlite3
import time
import zlib
from pathlib import Path

from core.choices import INDEX_TYPES
from core.errors import IndexCorruptError, InputError
from models.identity import ModelIdentity

from .failures import damaged, no_room
from .sqlite_utils_import import sqlite_utils

SCHEMA_VERSION = 1
SQLITE_NAME = "index.sqlite"
NEW_SQLITE_NAME = SQLITE_NAME + ".new"  # a database being created


def connect(path: Path) -> sqlite_utils.Database:
    """A WAL connection shared by the threads of one process (access serialised by its owner)."""
    conn = None
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = normal")
        conn.create_function("content_hash", 1, _content_hash, deterministic=True)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()  # leave no -wal/-shm files behind in a damaged index
        if no_room(exc, path.parent) is not None:
            raise  # not damage: Store.open/open_for_writing say so
        raise IndexCorruptError(
            f"{path} cannot be opened ({exc}) — the index is damaged; rebuild it into a new --db directory"
        ) from exc
    return db


def _content_hash(value: str | bytes | None) -> int:
    """A stable hash of a value (CRC-32), for picks that must depend on content, not on row ids."""
    if value is None:
        return 0
    return zlib.crc32(value.encode("utf-8") if isinstance(value, str) else value)


def create_database(db_dir: Path, identity: ModelIdentity, index_type: str, vector_store: str = "faiss") -> None:
    """An empty index database at `db_dir/index.sqlite`, renamed into place once complete.
    One that fails (no room on the disk) removes its files."""
    if index_type not in INDEX_TYPES:
        raise InputError(f"--index-type must be one of {', '.join(INDEX_TYPES)}")
    tmp = db_dir / NEW_SQLITE_NAME
    temporaries = [db_dir / name for name in (NEW_SQLITE_NAME, NEW_SQLITE_NAME + "-wal", NEW_SQLITE_NAME + "-shm")]
    for p in temporaries:
        p.unlink(missing_ok=True)
    try:
        db = connect(tmp)
        try:
            _create_tables(db, identity, index_type, vector_store)
            # Into the file now, failing loudly: the checkpoint close() makes gives up silently
            # (a full disk), and the schema left in the -wal would not follow the rename.
            db.execute("pragma wal_checkpoint(truncate)")
        finally:
            db.conn.close()
    except BaseException:
        for p in temporaries:
            p.unlink(missing_ok=True)
        raise
    os.replace(tmp, db_dir / SQLITE_NAME)
    dir_fd = os.open(db_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def _create_tables(db: sqlite_utils.Database, identity: ModelIdentity, index_type: str, vector_store: str) -> None:
    with db.conn:
        db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db["files"].create(
            {"id": int, "path": str, "sha256": str, "size": int, "mtime": float, "file_type": str, "indexed_at": str},
            pk="id", if_not_exists=True,
        )
        db["files"].create_index(["path"], unique=True, if_not_exists=True)
        db["documents"].create(
            {"id": int, "file_id": int, "key": str, "title": str, "lang": str, "text": str},
            pk="id", foreign_keys=[("file_id", "files", "id")], if_not_exists=True,
        )
        db["documents"].create_index(["file_id"], if_not_exists=True)
        # AUTOINCREMENT: a chunk id is never reused, so a vector-store id always means one
        # vector, even in an older FAISS file that a reader uses while a run is in progress.
        db.execute(
            """create table if not exists chunks (
                id integer primary key autoincrement, doc_id integer references documents(id),
                ord integer, start integer, "end" integer, lang text, n_tokens integer, vector blob)"""
        )
        db["chunks"].create_index(["doc_id"], if_not_exists=True)
        db.execute("create virtual table if not exists chunks_fts using fts5(terms)")
        meta = {
            "schema_version": SCHEMA_VERSION, "generation": 0, "index_type": index_type,
            "model": identity.to_json(), "dim": identity.dim, "created_at": now(), "updated_at": now(),
            "precision": "",  # no vectors yet
            "vector_store": vector_store,  # faiss | milvus-lite | milvus://HOST:PORT/COLLECTION
        }
        db["meta"].upsert_all(({"key": k, "value": str(v)} for k, v in meta.items()), pk="key")


def check_schema(db: sqlite_utils.Database, path: Path) -> None:
    """IndexCorruptError unless `db` (the file at `path`) is an index this version reads."""
    try:
        row = db.execute("select value from meta where key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from exc
    if row is None:
        raise IndexCorruptError(f"{path} is not an xlsearch index (no metadata)")
    if int(row[0]) != SCHEMA_VERSION:
        raise IndexCorruptError(f"{path.parent} uses index format {row[0]}; this xlsearch reads format {SCHEMA_VERSION} — re-index")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
