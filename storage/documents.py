"""The index's SQLite database: files, documents, chunks with their vectors, FTS5 terms, metadata.

SQLite is the source of truth. Every committed batch bumps a generation number, which the
vector store (storage.faiss_store) follows. Only the writer (the one holding `write.lock`, see
storage.lock) writes; readers work inside `snapshot()`, one SQLite read transaction, so a search
sees one committed generation however many batches a run commits meanwhile.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.errors import IndexCorruptError, IndexMismatchError
from models.identity import ModelIdentity

from .failures import storage_errors
from .records import FileRecord
from .schema import SQLITE_NAME, check_schema, connect, now
from .sqlite_utils_import import sqlite_utils


class DocumentStore:
    """One connection to an index's database; `writable` when its opener holds the write lock."""

    def __init__(self, db_dir: Path, db: sqlite_utils.Database, writable: bool = False, precision: str = "fp32"):
        self.dir = Path(db_dir)
        self.db = db
        self.writable = writable
        self.precision = precision  # of the encoder whose vectors write_files stores

    @property
    def sqlite_path(self) -> Path:
        return self.dir / SQLITE_NAME

    @classmethod
    def open(cls, db_dir: Path, writable: bool = False, precision: str = "fp32") -> DocumentStore:
        """An existing database, its schema checked; closed again if the check fails."""
        store = cls(db_dir, connect(Path(db_dir) / SQLITE_NAME), writable, precision)
        try:
            check_schema(store.db, store.sqlite_path)
        except BaseException:
            store.close()  # also removes the -wal/-shm files SQLite made while opening
            raise
        return store

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

    # -- schema and metadata ------------------------------------------------------------------

    @storage_errors
    def meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, **values) -> None:
        self.db["meta"].upsert_all(({"key": k, "value": str(v)} for k, v in values.items()), pk="key")

    @property
    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    @property
    def dim(self) -> int:
        return int(self.meta("dim"))

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

    @storage_errors
    def file_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("select path, sha256 from files").fetchall())

    @storage_errors
    def write_files(self, files: Iterable[FileRecord], removed_paths: Iterable[str] = (), roots: Iterable[Path] = ()) -> None:
        """Replace these files (and drop `removed_paths`) in one transaction; bump the generation.

        `roots`: the paths the run was given, remembered in the same transaction (so paths can be
        shown relative to them, and a batch that fails leaves no trace of them either)."""
        assert self.writable, "write_files needs the write lock"
        conn = self.db.conn
        with conn:
            wrote_vectors = False
            for path in removed_paths:
                self._delete_file(path)
            for f in files:
                self._delete_file(f.path)
                file_id = conn.execute(
                    "insert into files (path, sha256, size, mtime, file_type, indexed_at) values (?, ?, ?, ?, ?, ?)",
                    [f.path, f.sha256, f.size, f.mtime, f.file_type, now()],
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
                conn.execute("insert or replace into meta (key, value) values ('precision', ?)", [self._precisions_with(self.precision)])
            known = self.roots()
            if (merged := sorted(set(known) | {str(r) for r in roots})) != known:
                conn.execute("insert or replace into meta (key, value) values ('roots', ?)", [json.dumps(merged)])
            conn.execute(
                "insert or replace into meta (key, value) values ('generation', ?), ('updated_at', ?)",
                [str(self.generation + 1), now()],
            )

    def _precisions_with(self, precision: str) -> str:
        """The precisions the index's vectors were made at, with `precision` added: "fp32",
        "bf16", "int8", or e.g. "bf16+fp32" when runs at both wrote to it."""
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

    # -- vectors, for the vector store and calibration ----------------------------------------

    @storage_errors
    def chunk_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.execute("select id from chunks")), np.int64)

    @storage_errors
    def vectors(self, chunk_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of these chunks, or of every chunk in id order when `chunk_ids` is None."""
        dim = self.dim
        if chunk_ids is None:
            count = self.db.execute("select count(*) from chunks").fetchone()[0]
            ids, vecs = np.empty(count, np.int64), np.empty((count, dim), np.float32)
            for i, (chunk_id, blob) in enumerate(self.db.execute("select id, vector from chunks order by id")):
                ids[i], vecs[i] = chunk_id, _vector(chunk_id, blob, dim)
            return ids, vecs
        ids, vecs = np.empty(len(chunk_ids), np.int64), np.empty((len(chunk_ids), dim), np.float32)
        for start in range(0, len(chunk_ids), 10000):
            part = chunk_ids[start : start + 10000]
            rows = self.db.execute(f"select id, vector from chunks where id in ({','.join('?' * len(part))})", part)
            for i, (chunk_id, blob) in enumerate(rows, start=start):
                ids[i], vecs[i] = chunk_id, _vector(chunk_id, blob, dim)
        return ids, vecs

    @storage_errors
    def chunk_count(self) -> int:
        return int(self.db.execute("select count(*) from chunks").fetchone()[0])

    @storage_errors
    def vector_rows(self, chunk_ids: list[int]) -> list[dict]:
        """These chunks' vectors with the fields a vector store filters on (language, document,
        path, file type, modified time): what a Milvus collection holds per chunk."""
        if not chunk_ids:
            return []
        dim = self.dim
        rows = self.db.execute(
            f"""select c.id, c.vector, c.lang, c.doc_id, f.path, f.file_type, f.mtime
                from chunks c join documents d on d.id = c.doc_id join files f on f.id = d.file_id
                where c.id in ({",".join("?" * len(chunk_ids))})""",
            chunk_ids,
        )
        return [
            {"id": cid, "vector": _vector(cid, blob, dim), "lang": lang, "doc_id": doc_id, "path": path,
             "file_type": file_type, "mtime": float(mtime)}
            for cid, blob, lang, doc_id, path, file_type, mtime in rows
        ]

    @storage_errors
    def vector_sample(self, per_language: int) -> dict[str, np.ndarray]:
        """Up to `per_language` chunk vectors of each language: a fixed pseudo-random pick, cheap
        enough to take per generation. The pick goes by a hash of each chunk's text, not by chunk
        id (a file removed and added again gets new ids) nor by its vector (embedded in another
        batch, a text's vector differs in its last bits): the same collection gets the same
        sample whatever its history, so the same content ranks the same."""
        dim = self.dim
        samples = {}
        for (lang,) in self.db.execute("select distinct lang from chunks").fetchall():
            rows = self.db.execute(
                """select c.id, c.vector from chunks c join documents d on d.id = c.doc_id where c.lang = ?
                   order by content_hash(substr(d.text, c.start + 1, c."end" - c.start)), c.id limit ?""",
                [lang, per_language],
            )
            vecs = [_vector(cid, blob, dim) for cid, blob in rows]
            samples[lang] = np.vstack(vecs) if vecs else np.zeros((0, dim), np.float32)
        return samples

    # -- reading ------------------------------------------------------------------------------

    @storage_errors
    def search_terms(self, match: str, k: int) -> list[tuple[int, float]]:
        """Top-k (chunk id, bm25) for an FTS5 MATCH expression; higher is better."""
        rows = self.db.execute(
            "select rowid, -bm25(chunks_fts) from chunks_fts where chunks_fts match ? order by bm25(chunks_fts) limit ?",
            [match, k],
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    @storage_errors
    def term_chunk_counts(self, terms: list[str]) -> dict[str, int]:
        """Term → how many chunks hold it (FTS5's own count; a term in none is left out).

        Read through a temporary `fts5vocab` table, which writes nothing to the index; it is
        declared on each call because a snapshot's rollback also drops what it made.
        """
        if not terms:
            return {}
        self.db.execute("create virtual table if not exists temp.chunks_fts_terms using fts5vocab(main, chunks_fts, row)")
        rows = self.db.execute(f"select term, doc from temp.chunks_fts_terms where term in ({','.join('?' * len(terms))})", terms)
        return {str(term): int(count) for term, count in rows}

    @storage_errors
    def chunk_rows(self, chunk_ids: list[int], text: bool = True) -> dict[int, dict]:
        """Chunk id → its text, offsets, language and document/file fields (missing ids skipped).

        `text=False` leaves the text out: it is cut from the document's whole text, read from
        SQLite's overflow pages for a long document, and a search ranks ~200 candidates to show
        ten (`chunk_texts_by_id` then reads the ten).
        """
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        text_column = "substr(d.text, c.start + 1, c.end - c.start) as text," if text else ""
        rows = self.db.execute(
            f"""select c.id, c.doc_id, c.ord, c.start, c.end, c.lang, {text_column}
                       d.title, d.key, d.lang as doc_lang, f.path, f.file_type, f.mtime, f.sha256
                from chunks c join documents d on d.id = c.doc_id join files f on f.id = d.file_id
                where c.id in ({marks})""",
            chunk_ids,
        )
        cols = [c[0] for c in rows.description]
        return {row[0]: dict(zip(cols, row)) for row in rows}

    @storage_errors
    def chunk_texts_by_id(self, chunk_ids: list[int]) -> dict[int, str]:
        """Chunk id → its text (missing ids skipped)."""
        if not chunk_ids:
            return {}
        rows = self.db.execute(
            f"""select c.id, substr(d.text, c.start + 1, c.end - c.start) from chunks c join documents d on d.id = c.doc_id
                where c.id in ({",".join("?" * len(chunk_ids))})""",
            chunk_ids,
        )
        return dict(rows.fetchall())

    @storage_errors
    def document(self, doc_id: int) -> dict | None:
        """A document's id, title, path, key, language and text, or None."""
        row = self.db.execute(
            "select d.id, d.title, f.path, d.key, d.lang, d.text from documents d join files f on f.id = d.file_id where d.id = ?",
            [doc_id],
        ).fetchone()
        return dict(zip(("id", "title", "path", "key", "lang", "text"), row)) if row else None

    @storage_errors
    def chunk_span(self, doc_id: int, chunk_id: int) -> tuple[int, int] | None:
        """(start, end) of a chunk in its document, or None when it is not that document's."""
        row = self.db.execute("select start, end from chunks where id = ? and doc_id = ?", [chunk_id, doc_id]).fetchone()
        return tuple(row) if row else None

    @storage_errors
    def chunk_texts(self) -> list[str]:
        """Every chunk's text, in id order (monolingual training text from an index)."""
        return [row[0] for row in self.db.execute(
            'select substr(d.text, c.start + 1, c."end" - c.start) from chunks c join documents d on d.id = c.doc_id order by c.id'
        )]

    @storage_errors
    def document_texts(self) -> list[str]:
        return [row[0] for row in self.db.execute("select text from documents")]

    def roots(self) -> list[str]:
        """The paths index runs were given (none for an index made before they were recorded)."""
        return json.loads(self.meta("roots") or "[]")

    @storage_errors
    def example_titles(self, per_language: int = 1) -> dict[str, list[str]]:
        """Short titles of documents in each language: example queries a new visitor can try (a
        fixed pseudo-random pick, so not always the first file indexed, often a licence)."""
        out: dict[str, list[str]] = {}
        rows = self.db.execute(
            "select lang, title from documents where length(title) between 2 and 40 order by (id * 2654435761) % 4294967296 limit 2000"
        ).fetchall()
        for lang, title in rows:
            titles = out.setdefault(lang, [])
            if len(titles) < per_language and title not in titles:
                titles.append(title)
        return out

    @storage_errors
    def counts(self) -> dict:
        """Files, documents and chunks, in all and per language, and chunk token lengths."""
        q = lambda sql: self.db.execute(sql).fetchall()  # noqa: E731
        mean_tokens, max_tokens = q("select avg(n_tokens), max(n_tokens) from chunks")[0]
        return {
            "files": q("select count(*) from files")[0][0],
            "documents": q("select count(*) from documents")[0][0],
            "documents_by_lang": dict(q("select lang, count(*) from documents group by lang order by lang")),
            "chunks": q("select count(*) from chunks")[0][0],
            "chunks_by_lang": dict(q("select lang, count(*) from chunks group by lang order by lang")),
            "mean_tokens": round(mean_tokens or 0, 1),
            "max_tokens": max_tokens,
        }


def _vector(chunk_id: int, blob: bytes, dim: int) -> np.ndarray:
    if blob is None or len(blob) != dim * 4:
        raise IndexCorruptError(f"chunk {chunk_id} has a damaged vector — re-index into a new --db directory")
    return np.frombuffer(blob, np.float32)
