"""An index directory: the document store (SQLite) and its vector store, opened together.

Only one process writes at a time (the write lock, storage.lock); readers never block. Opening
checks everything that could make later work meaningless — no index here, a damaged or foreign
database, another model's vectors — before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from core.errors import InputError
from models.identity import ModelIdentity

from .documents import DocumentStore
from .failures import no_room_on_open, storage_errors
from .faiss_store import FaissVectorStore
from .lock import LOCK_NAME, take_write_lock, write_lock_held
from .milvus_store import MilvusVectorStore, check_ready, milvus_target
from .records import FileRecord
from .schema import NEW_SQLITE_NAME, SQLITE_NAME, create_database
from .vector_store import VectorStore


class Store:
    """Open with `Store.open` (read) or `Store.open_for_writing`; `documents` and `vectors` do the work."""

    def __init__(self, documents: DocumentStore, vectors: VectorStore, lock_fd: int | None = None):
        self.documents = documents
        self.vectors = vectors
        self._lock_fd = lock_fd

    @property
    def dir(self) -> Path:
        return self.documents.dir

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

    @property
    def sqlite_path(self) -> Path:
        return self.documents.sqlite_path

    @classmethod
    @no_room_on_open(reading=True)
    def open(cls, db_dir: Path) -> Store:
        """Open an existing index for reading; a clear error if there is none."""
        db_dir = Path(db_dir)
        if not exists(db_dir):
            raise InputError(f"no index at {db_dir} — create one with `xlsearch index PATH --db {db_dir}`")
        documents = DocumentStore.open(db_dir)
        return cls(documents, vector_store(documents))

    @classmethod
    @no_room_on_open(reading=False)
    def open_for_writing(
        cls, db_dir: Path, identity: ModelIdentity, index_type: str | None = None, precision: str = "fp32",
        vectors: str | None = None,
    ) -> Store:
        """Open (creating if needed) with the write lock held and the model checked.

        Fails before touching anything if another run holds the lock, the index was built with
        a different model or its Milvus server cannot be reached. `precision` is the encoder's
        ("fp32"/"bf16"/"int8"): recorded in the metadata with the vectors it makes (any precision
        searches the same index). `vectors`: where the vectors are searched ("faiss",
        "milvus-lite", "milvus://HOST:PORT[/COLLECTION]"), recorded in the index; None keeps
        the index's own (FAISS for a new one); another one moves them there at the end of the run.
        """
        db_dir = Path(db_dir)
        target = milvus_target(vectors, db_dir) if vectors and vectors != "faiss" else None
        requested = target.spec if target else "faiss"  # the store `vectors` names, as recorded
        if target is not None:
            check_ready(target)
        if db_dir.exists() and not db_dir.is_dir():
            raise InputError(f"--db {db_dir} is a file, not a directory — choose a directory for the index")
        leftovers = (LOCK_NAME, NEW_SQLITE_NAME, NEW_SQLITE_NAME + "-wal", NEW_SQLITE_NAME + "-shm")
        if not exists(db_dir) and db_dir.exists() and any(p.name not in leftovers for p in db_dir.iterdir()):
            raise InputError(f"--db {db_dir} is a non-empty directory without an index — choose an empty or new directory")
        db_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = take_write_lock(db_dir)
        documents = None
        try:
            fresh = not exists(db_dir)  # again, now that no one else can create it
            if fresh:
                _check_index_type(index_type or "flat", requested)
                create_database(db_dir, identity, index_type or "flat", requested)
            documents = DocumentStore.open(db_dir, writable=True, precision=precision)
            store = cls(documents, vector_store(documents), lock_fd)
            if not fresh:
                documents.check_model(identity)
                _check_index_type(index_type or documents.meta("index_type") or "flat",
                                  requested if vectors else documents.meta("vector_store") or "faiss")
                if vectors and not same_vector_store(store.vectors.kind, vectors):
                    store.vectors.reset()  # the new store is filled from SQLite by the run's sync
                    documents.set_meta(vector_store=requested)
                    store.vectors = vector_store(documents)
                if index_type and index_type != documents.meta("index_type"):
                    documents.set_meta(index_type=index_type)
                    store.vectors.reset()
                if isinstance(store.vectors, MilvusVectorStore) and not vectors:
                    check_ready(store.vectors.target)  # an unreachable server fails the run before it embeds anything
            return store
        except BaseException:
            if documents is not None:
                documents.close()
            os.close(lock_fd)
            raise

    def close(self) -> None:
        self.vectors.close()
        self.documents.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def snapshot(self):
        """Reads inside see one committed generation (see DocumentStore.snapshot)."""
        return self.documents.snapshot()

    @property
    def model_identity(self) -> ModelIdentity:
        return self.documents.model_identity

    def check_model(self, identity: ModelIdentity) -> None:
        self.documents.check_model(identity)

    def write_files(self, files: Iterable[FileRecord], removed_paths: Iterable[str] = (), roots: Iterable[Path] = ()) -> None:
        """Replace these files (and drop `removed_paths`) in one committed batch (see DocumentStore.write_files)."""
        if not self.writable:
            raise RuntimeError("write_files needs the write lock: open the store with Store.open_for_writing")
        self.documents.write_files(files, removed_paths, roots)

    def sync_vectors(self) -> None:
        """At the end of a run: the vector store catches up with every committed batch."""
        self.vectors.sync()

    @storage_errors
    def info(self) -> dict:
        with self.snapshot():  # counts of one generation, even while a run commits batches
            documents = self.documents
            identity = documents.model_identity
            precision = documents.meta("precision")  # None: an index older than this record (all fp32); "": no vectors yet
            counts = documents.counts()
            return {
                "db": str(self.dir),
                "roots": documents.roots(),
                **{key: counts[key] for key in ("files", "documents", "documents_by_lang", "chunks", "chunks_by_lang")},
                "model": identity.name,
                "model_path": identity.path,
                "dim": identity.dim,
                "precision": "fp32" if precision is None else precision or None,  # of the encoder that made the vectors
                "index_type": documents.meta("index_type"),
                "vector_store": self.vectors.kind,
                "generation": documents.generation,
                "vectors_in_sync": self.vectors.in_sync(),
                "indexing": write_lock_held(self.dir),  # an index run is in progress (its vectors come at its end)
                "created_at": documents.meta("created_at"),
                "updated_at": documents.meta("updated_at"),
                "size_bytes": sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file()),
            }


def vector_store(documents: DocumentStore) -> VectorStore:
    """The vector store an index recorded (FAISS for an index older than that record)."""
    spec = documents.meta("vector_store") or "faiss"
    return FaissVectorStore(documents) if spec == "faiss" else MilvusVectorStore(documents, spec)


def same_vector_store(recorded: str, requested: str) -> bool:
    """Whether --vector-store names the store an index already uses (a server address without
    a collection name means the collection the index recorded there)."""
    return recorded == requested or requested.startswith("milvus://") and recorded.startswith(requested.rstrip("/") + "/")


def exists(db_dir: Path) -> bool:
    """Whether `db_dir` holds an index (its database file)."""
    return (Path(db_dir) / SQLITE_NAME).exists()


def _check_index_type(index_type: str, vector_store_spec: str) -> None:
    """flat16 is a FAISS file format: Milvus would keep 32-bit vectors under its name."""
    if index_type == "flat16" and vector_store_spec != "faiss":
        raise InputError("--index-type flat16 is for FAISS (--vector-store faiss); with Milvus choose flat, ivf or hnsw")
