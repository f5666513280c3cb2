"""The index on disk: SQLite (files, documents, chunks with their vectors, metadata) + FAISS.

SQLite is the source of truth. Every committed batch bumps a generation number; the FAISS file
is named after the generation it was built from (`vectors-00000042.faiss`), written to a temp
file and renamed. On open, a FAISS file whose generation differs from SQLite's (a crash between
the two writes, or a run still in progress) is detected by its name alone, and the vectors are
rebuilt from SQLite. So a kill at any moment leaves an index that opens and is complete up to
its last commit.

Only one process writes at a time (an exclusive `flock` on `write.lock`); readers never block.
A reader works inside `snapshot()`, one SQLite read transaction: while a run commits batches, a
search or `info` sees one committed generation throughout, and FAISS vectors for a generation
that has no file yet are brought up to date in memory from that same snapshot.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import logging
import os
import resource
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils

from . import vectors as vx
from .encoder import ModelIdentity
from .errors import IndexBusyError, IndexCorruptError, IndexMismatchError, InputError, StorageFullError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SQLITE_NAME = "index.sqlite"
NEW_SQLITE_NAME = SQLITE_NAME + ".new"  # a database being created
LOCK_NAME = "write.lock"
CALIBRATION_SAMPLE = 512  # chunks per language (a fixed pseudo-random pick) standing for its background


@dataclass
class ChunkRecord:
    start: int  # character offsets into the document text
    end: int
    lang: str
    n_tokens: int
    vector: np.ndarray | None = None
    terms: str = ""  # space-separated lexical terms for the FTS5 index (indexer.terms)


@dataclass
class DocumentRecord:
    key: str  # "" for a whole file; the row id for JSONL/CSV rows
    title: str
    text: str
    lang: str
    chunks: list[ChunkRecord] = field(default_factory=list)


@dataclass
class FileRecord:
    path: str
    sha256: str
    size: int
    mtime: float
    file_type: str
    documents: list[DocumentRecord] = field(default_factory=list)


def _faiss_name(generation: int) -> str:
    return f"vectors-{generation:08d}.faiss"


def _damage_is_an_error(method):
    """SQLite finding a damaged page mid-query becomes one IndexCorruptError, not a traceback.

    OperationalError (locked, I/O) is left alone: the index itself may be fine. A write that
    found no room (disk full, `ulimit -f`) becomes one StorageFullError naming the index.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.OperationalError, OSError) as exc:
            if (why := _no_room(exc, self.dir)) is None:
                raise
            raise _storage_full(self.dir, why, reading=self._lock_fd is None) from exc
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"{self.dir / SQLITE_NAME} cannot be read ({exc}) — the index is damaged; rebuild it into a new --db directory"
            ) from exc

    return wrapper


# -- no room on the disk ---------------------------------------------------------------------

_SQLITE_IOERR, _SQLITE_FULL = 10, 13
_NEARLY_FULL = 1 << 20  # bytes free below which an I/O error is put down to a full disk


def _no_room(exc: BaseException, db_dir: Path) -> str | None:
    """Why a write found no room (the disk is full, the quota used up, a file at its size limit),
    or None when `exc` is some other failure.

    SQLite reports a full disk as SQLITE_FULL, but a write refused by the file size limit
    (`ulimit -f`), or a shared-memory file it could not grow, only as an I/O error: such an error
    counts when the disk is (nearly) full or a size limit is set.
    """
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


def _storage_full(db_dir: Path, why: str, reading: bool) -> StorageFullError:
    fix = "raise the limit (ulimit -f unlimited)" if "ulimit" in why else "free some space"
    if reading:
        return StorageFullError(f"cannot read the index at {db_dir}: {why}, and SQLite needs a few KB beside it to read — {fix}")
    if "ulimit" not in why:
        fix += " or choose a --db directory on another disk"
    return StorageFullError(
        f"no room to write the index at {db_dir}: {why} — {fix}, then run again (batches committed before this are kept)"
    )


def _no_room_is_an_error(reading: bool):
    """For Store.open/open_for_writing(cls, db_dir, ...): see `_damage_is_an_error`."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(cls, db_dir, *args, **kwargs):
            try:
                return method(cls, db_dir, *args, **kwargs)
            except (sqlite3.OperationalError, OSError) as exc:
                if (why := _no_room(exc, Path(db_dir))) is None:
                    raise
                raise _storage_full(Path(db_dir), why, reading) from exc

        return wrapper

    return decorate


class Store:
    """An index directory. Open with `Store.open` (read) or `Store.open_for_writing`."""

    def __init__(self, db_dir: Path, db: sqlite_utils.Database, lock_fd: int | None = None):
        self.dir = Path(db_dir)
        self.db = db
        self._lock_fd = lock_fd
        self._index = None
        self._index_generation: int | None = None
        self._precision = "fp32"  # of the encoder whose vectors write_files stores

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    @_no_room_is_an_error(reading=True)
    def open(cls, db_dir: Path) -> Store:
        """Open an existing index for reading; a clear error if there is none."""
        db_dir = Path(db_dir)
        if not (db_dir / SQLITE_NAME).exists():
            raise InputError(f"no index at {db_dir} — create one with `xlsearch index PATH --db {db_dir}`")
        store = cls(db_dir, _connect(db_dir / SQLITE_NAME))
        try:
            store._check_schema()
        except BaseException:
            store.close()  # also removes the -wal/-shm files SQLite made while opening
            raise
        return store

    @classmethod
    @_no_room_is_an_error(reading=False)
    def open_for_writing(
        cls, db_dir: Path, identity: ModelIdentity, index_type: str | None = None, precision: str = "fp32"
    ) -> Store:
        """Open (creating if needed) with the write lock held and the model checked.

        Fails before touching anything if another run holds the lock or the index was built
        with a different model. `precision` is the encoder's ("fp32"/"int8"): recorded in the
        metadata with the vectors it makes (either precision searches the same index).
        """
        db_dir = Path(db_dir)
        if db_dir.exists() and not db_dir.is_dir():
            raise InputError(f"--db {db_dir} is a file, not a directory — choose a directory for the index")
        fresh = not (db_dir / SQLITE_NAME).exists()
        leftovers = (LOCK_NAME, NEW_SQLITE_NAME, NEW_SQLITE_NAME + "-wal", NEW_SQLITE_NAME + "-shm")
        if fresh and db_dir.exists() and any(p.name not in leftovers for p in db_dir.iterdir()):
            raise InputError(f"--db {db_dir} is a non-empty directory without an index — choose an empty or new directory")
        db_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = _take_write_lock(db_dir)
        store = None
        try:
            fresh = not (db_dir / SQLITE_NAME).exists()  # again, now that no one else can create it
            if fresh:
                cls._create_index_file(db_dir, identity, index_type or "flat")
            store = cls(db_dir, _connect(db_dir / SQLITE_NAME), lock_fd)
            store._precision = precision
            if not fresh:
                store._check_schema()
                store.check_model(identity)
                if index_type and index_type != store.meta("index_type"):
                    store.set_meta(index_type=index_type)
                    store._drop_vector_files()
            return store
        except BaseException:
            if store is not None:
                store.close()  # closes the lock too
            else:
                os.close(lock_fd)
            raise

    @contextlib.contextmanager
    def snapshot(self):
        """Reads inside see one committed generation, however many batches a run commits meanwhile.

        A read transaction on the WAL: SQLite pins the state at its first read, and the writer
        carries on. Nested uses share the outermost one.
        """
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("begin")
        try:
            yield
        finally:
            conn.rollback()  # nothing was written: this only ends the read transaction

    def close(self) -> None:
        self.db.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema and metadata ------------------------------------------------------------------

    @classmethod
    def _create_index_file(cls, db_dir: Path, identity: ModelIdentity, index_type: str) -> None:
        """A new database is built beside its final name and renamed into place: a run killed
        while creating it leaves either no index or a complete empty one, never half a schema.
        One that fails (no room on the disk) removes its files."""
        tmp = db_dir / NEW_SQLITE_NAME
        temporaries = [db_dir / name for name in (NEW_SQLITE_NAME, NEW_SQLITE_NAME + "-wal", NEW_SQLITE_NAME + "-shm")]
        for p in temporaries:
            p.unlink(missing_ok=True)
        try:
            store = cls(db_dir, _connect(tmp))
            try:
                store._create_schema(identity, index_type)
                # Into the file now, failing loudly: the checkpoint close() makes gives up silently
                # (a full disk), and the schema left in the -wal would not follow the rename.
                store.db.execute("pragma wal_checkpoint(truncate)")
            finally:
                store.close()
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

    def _create_schema(self, identity: ModelIdentity, index_type: str) -> None:
        if index_type not in vx.INDEX_TYPES:
            raise InputError(f"--index-type must be one of {', '.join(vx.INDEX_TYPES)}")
        with self.db.conn:
            self.db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            self.db["files"].create(
                {"id": int, "path": str, "sha256": str, "size": int, "mtime": float, "file_type": str, "indexed_at": str},
                pk="id", if_not_exists=True,
            )
            self.db["files"].create_index(["path"], unique=True, if_not_exists=True)
            self.db["documents"].create(
                {"id": int, "file_id": int, "key": str, "title": str, "lang": str, "text": str},
                pk="id", foreign_keys=[("file_id", "files", "id")], if_not_exists=True,
            )
            self.db["documents"].create_index(["file_id"], if_not_exists=True)
            # AUTOINCREMENT: a chunk id is never reused, so a FAISS id always means one vector,
            # even in an older FAISS file that a reader uses while a run is in progress.
            self.db.execute(
                """create table if not exists chunks (
                    id integer primary key autoincrement, doc_id integer references documents(id),
                    ord integer, start integer, "end" integer, lang text, n_tokens integer, vector blob)"""
            )
            self.db["chunks"].create_index(["doc_id"], if_not_exists=True)
            self.db.execute("create virtual table if not exists chunks_fts using fts5(terms)")
            self.set_meta(
                schema_version=SCHEMA_VERSION, generation=0, index_type=index_type,
                model=identity.to_json(), dim=identity.dim, created_at=_now(), updated_at=_now(),
                precision="",  # no vectors yet
            )

    def _check_schema(self) -> None:
        try:
            version = self.meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"{self.dir / SQLITE_NAME} cannot be read ({exc}) — the index is damaged; "
                "rebuild it into a new --db directory"
            ) from exc
        if version is None:
            raise IndexCorruptError(f"{self.dir / SQLITE_NAME} is not an xlsearch index (no metadata)")
        if int(version) != SCHEMA_VERSION:
            raise IndexCorruptError(
                f"{self.dir} uses index format {version}; this xlsearch reads format {SCHEMA_VERSION} — re-index"
            )

    @_damage_is_an_error
    def meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, **values) -> None:
        self.db["meta"].upsert_all(({"key": k, "value": str(v)} for k, v in values.items()), pk="key")

    @property
    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    @property
    def model_identity(self) -> ModelIdentity:
        return ModelIdentity.from_json(self.meta("model"))

    def check_model(self, identity: ModelIdentity) -> None:
        stored = self.model_identity
        if not stored.same_model(identity):
            raise IndexMismatchError(
                f"the index at {self.dir} was built with model '{stored.name}' ({stored.path}, dim {stored.dim}); "
                f"'{identity.name}' ({identity.path}, dim {identity.dim}) would give meaningless results — "
                f"pass --model {stored.path}, or index into a new --db directory"
            )

    # -- writing ------------------------------------------------------------------------------

    @_damage_is_an_error
    def file_hashes(self) -> dict[str, str]:
        return {path: sha for path, sha in self.db.execute("select path, sha256 from files")}

    @_damage_is_an_error
    def write_files(self, files: Iterable[FileRecord], removed_paths: Iterable[str] = ()) -> None:
        """Replace these files (and drop `removed_paths`) in one transaction; bump the generation."""
        assert self._lock_fd is not None, "write_files needs the write lock"
        conn = self.db.conn
        with conn:
            wrote_vectors = False
            for path in removed_paths:
                self._delete_file(path)
            for f in files:
                self._delete_file(f.path)
                file_id = conn.execute(
                    "insert into files (path, sha256, size, mtime, file_type, indexed_at) values (?, ?, ?, ?, ?, ?)",
                    [f.path, f.sha256, f.size, f.mtime, f.file_type, _now()],
                ).lastrowid
                for doc in f.documents:
                    doc_id = conn.execute(
                        "insert into documents (file_id, key, title, lang, text) values (?, ?, ?, ?, ?)",
                        [file_id, doc.key, doc.title, doc.lang, doc.text],
                    ).lastrowid
                    for i, c in enumerate(doc.chunks):
                        chunk_id = conn.execute(
                            "insert into chunks (doc_id, ord, start, end, lang, n_tokens, vector) values (?, ?, ?, ?, ?, ?, ?)",
                            (doc_id, i, c.start, c.end, c.lang, c.n_tokens, np.asarray(c.vector, np.float32).tobytes()),
                        ).lastrowid
                        conn.execute("insert into chunks_fts (rowid, terms) values (?, ?)", (chunk_id, c.terms))
                        wrote_vectors = True
            if wrote_vectors:
                conn.execute("insert or replace into meta (key, value) values ('precision', ?)", [self._precisions_with(self._precision)])
            conn.execute(
                "insert or replace into meta (key, value) values ('generation', ?), ('updated_at', ?)",
                [str(self.generation + 1), _now()],
            )

    def _precisions_with(self, precision: str) -> str:
        """The precisions the index's vectors were made at, with `precision` added: "fp32",
        "int8", or "fp32+int8" when runs at both wrote to it."""
        recorded = self.meta("precision")
        have = {"fp32"} if recorded is None else set(filter(None, recorded.split("+")))  # None: made before it was recorded
        return "+".join(sorted(have | {precision}))

    def _delete_file(self, path: str) -> None:
        conn = self.db.conn
        row = conn.execute("select id from files where path = ?", [path]).fetchone()
        if row is None:
            return
        conn.execute(
            "delete from chunks_fts where rowid in (select c.id from chunks c join documents d on d.id = c.doc_id where d.file_id = ?)",
            [row[0]],
        )
        conn.execute("delete from chunks where doc_id in (select id from documents where file_id = ?)", [row[0]])
        conn.execute("delete from documents where file_id = ?", [row[0]])
        conn.execute("delete from files where id = ?", [row[0]])

    @_damage_is_an_error
    def sync_vectors(self) -> None:
        """Make the FAISS file match SQLite's generation (rebuild + atomic save), drop old ones."""
        generation = self.generation
        target = self.dir / _faiss_name(generation)
        if target.exists() and self._index_generation != generation:
            try:  # named right but perhaps damaged (truncated, overwritten): check it reads
                self._index, self._index_generation = vx.to_gpu(vx.load_index(target)), generation
            except Exception as exc:  # FAISS raises RuntimeError on a damaged file
                log.warning("%s is damaged; rebuilding it from the database", target)
                log.debug("FAISS: %s", exc)
                target.unlink()
        if not target.exists():
            index = self._updated_flat_index() or self._build_from_sqlite()
            vx.save_index(index, target)
            self._index, self._index_generation = vx.to_gpu(index), generation
        self._drop_vector_files(keep=target.name)

    def _drop_vector_files(self, keep: str | None = None) -> None:
        for p in self.dir.glob("vectors-*.faiss*"):
            if p.name != keep:
                p.unlink(missing_ok=True)

    def _updated_flat_index(self):
        """The newest flat FAISS file brought up to date by a diff of ids, or None.

        Adding one file to a large collection then costs reading its vectors, not all of them.
        Only for flat indexes: IVF should be retrained as data changes, HNSW cannot delete.
        """
        import faiss

        previous = self._newest_vector_file()
        if self.meta("index_type") != "flat" or previous is None:
            return None
        try:
            index = vx.load_index(previous)
            have = faiss.vector_to_array(index.id_map)
        except Exception:  # damaged or not an IDMap: rebuild instead
            return None
        want = np.fromiter((r[0] for r in self.db.execute("select id from chunks")), np.int64)
        removed, added = np.setdiff1d(have, want), np.setdiff1d(want, have)
        if len(removed):
            index.remove_ids(faiss.IDSelectorBatch(removed))
        if len(added):
            ids, vecs = self._vectors_for(added.tolist())
            index.add_with_ids(vecs, ids)
        return index

    def _vectors_for(self, chunk_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        dim = int(self.meta("dim"))
        ids, vecs = np.empty(len(chunk_ids), np.int64), np.empty((len(chunk_ids), dim), np.float32)
        for start in range(0, len(chunk_ids), 10000):
            part = chunk_ids[start : start + 10000]
            rows = self.db.execute(f"select id, vector from chunks where id in ({','.join('?' * len(part))})", part)
            for i, (chunk_id, blob) in enumerate(rows, start=start):
                ids[i], vecs[i] = chunk_id, self._vector(chunk_id, blob, dim)
        return ids, vecs

    @staticmethod
    def _vector(chunk_id: int, blob: bytes, dim: int) -> np.ndarray:
        if blob is None or len(blob) != dim * 4:
            raise IndexCorruptError(f"chunk {chunk_id} has a damaged vector — re-index into a new --db directory")
        return np.frombuffer(blob, np.float32)

    def _build_from_sqlite(self):
        dim = int(self.meta("dim"))
        count = self.db.execute("select count(*) from chunks").fetchone()[0]
        ids = np.empty(count, np.int64)
        vecs = np.empty((count, dim), np.float32)
        for i, (chunk_id, blob) in enumerate(self.db.execute("select id, vector from chunks order by id")):
            ids[i], vecs[i] = chunk_id, self._vector(chunk_id, blob, dim)
        return vx.build_index(self.meta("index_type") or "flat", ids, vecs, dim)

    # -- reading ------------------------------------------------------------------------------

    @_damage_is_an_error
    def vector_index(self):
        """The FAISS index for the current generation, loaded once, repaired if stale.

        Without a file for this generation (an index run is committing batches, and writes it at
        its end; or the run died first), a reader brings the newest file up to date in memory,
        from the same snapshot as its other reads, so vector hits always match the rows it reads.
        """
        with self.snapshot():
            generation = self.generation
            if self._index is not None and self._index_generation == generation:
                return self._index
            path = self.dir / _faiss_name(generation)
            index = None
            damaged = False
            if path.exists():
                try:
                    index = vx.load_index(path)
                except Exception as exc:  # FAISS raises RuntimeError on a damaged file
                    damaged = path.exists()  # else a newer run replaced it meanwhile: no damage
                    log.debug("FAISS cannot read %s: %s", path, exc)
            if index is None:
                if self._lock_fd is not None:
                    self.sync_vectors()
                    return self._index
                if damaged:
                    log.warning(
                        "%s is damaged; searching vectors rebuilt in memory — run `xlsearch index` on %s to repair it on disk",
                        path, self.dir,
                    )
                    index = self._build_from_sqlite()
                else:
                    if not _write_lock_held(self.dir):  # a run in progress is normal, not worth a word
                        log.warning(
                            "the vectors in %s are out of date (an interrupted index run?); brought up to date in memory — "
                            "run `xlsearch index` on it to repair it on disk", self.dir,
                        )
                    index = self._caught_up_in_memory() or self._build_from_sqlite()
            self._index, self._index_generation = vx.to_gpu(index), generation
            return self._index

    def _caught_up_in_memory(self):
        """For a reader: the newest FAISS file plus the chunks SQLite has and it lacks, or None.

        Chunk ids are never reused, so ids in the file that SQLite no longer has are chunks
        deleted since: removed where the index type can delete (flat, IVF), otherwise left for
        `chunk_rows` to skip. Costs one scan of chunk ids and reading the new vectors.
        """
        import faiss

        previous = self._newest_vector_file()
        if previous is None:
            return None
        try:
            index = vx.load_index(previous)
            have = vx.index_ids(index)
        except Exception as exc:  # gone (a run just finished and replaced it) or damaged
            log.debug("FAISS cannot read %s: %s", previous, exc)
            return None
        want = np.fromiter((r[0] for r in self.db.execute("select id from chunks")), np.int64)
        removed, added = np.setdiff1d(have, want), np.setdiff1d(want, have)
        if len(removed):
            try:
                index.remove_ids(faiss.IDSelectorBatch(removed))
            except RuntimeError:  # HNSW cannot delete
                pass
        if len(added):
            ids, vecs = self._vectors_for(added.tolist())
            index.add_with_ids(vecs, ids)
        return index

    def _newest_vector_file(self) -> Path | None:
        files = sorted(self.dir.glob("vectors-*.faiss"))
        return files[-1] if files else None

    def search_vectors(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self.search_vectors_many([query], k)[0]

    def search_vectors_many(self, queries: Sequence[np.ndarray], k: int) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine) per query, all in one FAISS call."""
        found = vx.search_index_many(self.vector_index(), np.stack(queries), k)
        return [[(int(i), float(s)) for i, s in zip(ids, scores)] for scores, ids in found]

    @_damage_is_an_error
    def search_terms(self, match: str, k: int) -> list[tuple[int, float]]:
        """Top-k (chunk id, bm25) for an FTS5 MATCH expression; higher is better."""
        rows = self.db.execute(
            "select rowid, -bm25(chunks_fts) from chunks_fts where chunks_fts match ? order by bm25(chunks_fts) limit ?",
            [match, k],
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    @_damage_is_an_error
    def language_calibration(self):
        """Per-language background samples for balanced ranking, cached per generation."""
        from search.calibration import LanguageCalibration

        generation = self.generation
        if getattr(self, "_calibration", (None, None))[0] != generation:
            dim = int(self.meta("dim"))
            samples = {}
            for (lang,) in self.db.execute("select distinct lang from chunks").fetchall():
                rows = self.db.execute(
                    "select id, vector from chunks where lang = ? order by (id * 2654435761) % 4294967296 limit ?", [lang, CALIBRATION_SAMPLE]
                )
                vecs = [self._vector(cid, blob, dim) for cid, blob in rows]
                samples[lang] = np.vstack(vecs) if vecs else np.zeros((0, dim), np.float32)
            self._calibration = (generation, LanguageCalibration(samples))
        return self._calibration[1]

    @_damage_is_an_error
    def chunk_rows(self, chunk_ids: list[int]) -> dict[int, dict]:
        """Chunk id → its text, offsets, language and document/file fields (missing ids skipped)."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self.db.execute(
            f"""select c.id, c.doc_id, c.ord, c.start, c.end, c.lang,
                       substr(d.text, c.start + 1, c.end - c.start) as text,
                       d.title, d.key, d.lang as doc_lang, f.path, f.file_type, f.mtime
                from chunks c join documents d on d.id = c.doc_id join files f on f.id = d.file_id
                where c.id in ({marks})""",
            chunk_ids,
        )
        cols = [c[0] for c in rows.description]
        return {row[0]: dict(zip(cols, row)) for row in rows}

    @_damage_is_an_error
    def info(self) -> dict:
        with self.snapshot():  # counts of one generation, even while a run commits batches
            return self._info()

    def _info(self) -> dict:
        q = lambda sql: self.db.execute(sql).fetchall()  # noqa: E731
        identity = self.model_identity
        precision = self.meta("precision")  # None: an index older than this record (all fp32); "": no vectors yet
        size = sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
        return {
            "db": str(self.dir),
            "files": q("select count(*) from files")[0][0],
            "documents": q("select count(*) from documents")[0][0],
            "documents_by_lang": dict(q("select lang, count(*) from documents group by lang order by lang")),
            "chunks": q("select count(*) from chunks")[0][0],
            "chunks_by_lang": dict(q("select lang, count(*) from chunks group by lang order by lang")),
            "model": identity.name,
            "model_path": identity.path,
            "dim": identity.dim,
            "precision": "fp32" if precision is None else precision or None,  # of the encoder that made the vectors
            "index_type": self.meta("index_type"),
            "generation": self.generation,
            "vectors_in_sync": (self.dir / _faiss_name(self.generation)).exists(),
            "indexing": _write_lock_held(self.dir),  # an index run is in progress (its vectors come at its end)
            "created_at": self.meta("created_at"),
            "updated_at": self.meta("updated_at"),
            "size_bytes": size,
        }


def _connect(path: Path) -> sqlite_utils.Database:
    conn = None
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = normal")
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()  # leave no -wal/-shm files behind in a damaged index
        if _no_room(exc, path.parent) is not None:
            raise  # not damage: Store.open/open_for_writing say so
        raise IndexCorruptError(
            f"{path} cannot be opened ({exc}) — the index is damaged; rebuild it into a new --db directory"
        ) from exc
    return db


def _take_write_lock(db_dir: Path) -> int:
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


def _write_lock_held(db_dir: Path) -> bool:
    try:
        fd = os.open(db_dir / LOCK_NAME, os.O_RDONLY)
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
