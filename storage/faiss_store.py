"""The FAISS copy of an index's vectors: one file beside the database, kept in step with it.

The file is named after the database generation it was built from (`vectors-00000042.faiss`),
written to a temp file and renamed. A file whose generation differs from SQLite's (a crash
between the two writes, or a run still in progress) is detected by its name alone. The writer
rebuilds it at the end of a run (`sync`); a reader that finds it behind brings the newest file
up to date in memory from its own snapshot, so vector hits always match the rows it reads.
So a kill at any moment leaves an index that opens and is complete up to its last commit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from core.memory import release_freed_memory

from . import faiss_files as ff
from .documents import DocumentStore
from .failures import storage_errors
from .lock import write_lock_held
from .vector_store import VectorFilter

log = logging.getLogger(__name__)


def faiss_name(generation: int) -> str:
    return f"vectors-{generation:08d}.faiss"


class FaissVectorStore:
    """A `VectorStore` over FAISS files (flat, flat16, IVF or HNSW: the index's `index_type`)."""

    kind = "faiss"

    def __init__(self, documents: DocumentStore):
        self.documents = documents
        self._index = None
        self._index_generation: int | None = None

    # for `storage_errors`: the folder to name, and whether a write was being made
    @property
    def dir(self) -> Path:
        return self.documents.dir

    @property
    def writable(self) -> bool:
        return self.documents.writable

    @property
    def sqlite_path(self) -> Path:
        return self.documents.sqlite_path

    def in_sync(self) -> bool:
        return (self.dir / faiss_name(self.documents.generation)).exists()

    def count(self) -> int:
        return self.index().ntotal

    def search(self, queries: np.ndarray, k: int, where: VectorFilter | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine) per query, all in one FAISS call (`where` is left to the caller)."""
        found = ff.search_index_many(self.index(), np.asarray(queries, np.float32), k)
        return [[(int(i), float(s)) for i, s in zip(ids, scores)] for scores, ids in found]

    def close(self) -> None:
        self._index = self._index_generation = None

    def reset(self) -> None:
        self._drop_files()
        self._index, self._index_generation = None, None

    @storage_errors
    def sync(self) -> None:
        """Make the FAISS file match SQLite's generation (rebuild + atomic save), drop old ones."""
        generation = self.documents.generation
        target = self.dir / faiss_name(generation)
        if target.exists() and self._index_generation != generation:
            try:  # named right but perhaps damaged (truncated, overwritten): check it reads
                self._index, self._index_generation = ff.to_gpu(ff.load_index(target)), generation
            except Exception as exc:  # FAISS raises RuntimeError on a damaged file
                log.warning("%s is damaged; rebuilding it from the database", target)
                log.debug("FAISS: %s", exc)
                target.unlink()
        if not target.exists():
            index = self._updated_flat_index() or self._build_from_sqlite()
            ff.save_index(index, target)
            self._index, self._index_generation = ff.to_gpu(index), generation
        self._drop_files(keep=target.name)

    @storage_errors
    def index(self):
        """The FAISS index for the current generation, loaded once, repaired if stale.

        Without a file for this generation (an index run is committing batches, and writes it at
        its end; or the run died first), a reader brings the newest file up to date in memory,
        from the same snapshot as its other reads, so vector hits always match the rows it reads.
        """
        with self.documents.snapshot():
            generation = self.documents.generation
            if self._index is not None and self._index_generation == generation:
                return self._index
            if self._index is not None:  # let the old generation's copy go before reading the new one: not two at once
                self._index = self._index_generation = None
                release_freed_memory()
            path = self.dir / faiss_name(generation)
            index = None
            damaged = False
            if path.exists():
                try:
                    index = ff.load_index(path)
                except Exception as exc:  # FAISS raises RuntimeError on a damaged file
                    damaged = path.exists()  # else a newer run replaced it meanwhile: no damage
                    log.debug("FAISS cannot read %s: %s", path, exc)
            if index is None:
                if self.writable:
                    self.sync()
                    return self._index
                if damaged:
                    log.warning(
                        "%s is damaged; searching vectors rebuilt in memory — run `xlsearch index` on %s to repair it on disk",
                        path, self.dir,
                    )
                    index = self._build_from_sqlite()
                else:
                    if not write_lock_held(self.dir):  # a run in progress is normal, not worth a word
                        log.warning(
                            "the vectors in %s are out of date (an interrupted index run?); brought up to date in memory — "
                            "run `xlsearch index` on it to repair it on disk", self.dir,
                        )
                    index = self._caught_up() or self._build_from_sqlite()
            self._index, self._index_generation = ff.to_gpu(index), generation
            return self._index

    # -- keeping the file in step ---------------------------------------------------------------

    def _drop_files(self, keep: str | None = None) -> None:
        for p in self.dir.glob("vectors-*.faiss*"):
            if p.name != keep:
                p.unlink(missing_ok=True)

    def _newest_file(self) -> Path | None:
        files = sorted(self.dir.glob("vectors-*.faiss"))
        return files[-1] if files else None

    def _updated_flat_index(self):
        """For the writer: the newest flat FAISS file brought up to date by a diff of ids, or None.

        Adding one file to a large collection then costs reading its vectors, not all of them.
        Only for flat and flat16 indexes: IVF should be retrained as data changes, HNSW cannot delete.
        """
        if self.documents.meta("index_type") not in ("flat", "flat16"):
            return None
        return self._caught_up()

    def _caught_up(self):
        """The newest FAISS file plus the chunks SQLite has and it lacks, or None (no file, or it
        cannot be read). One method for the writer's incremental save and a reader's catch-up.

        Chunk ids are never reused, so ids in the file that SQLite no longer has are chunks
        deleted since: removed where the index type can delete (flat, IVF), otherwise left for
        the search to skip (it reads rows by id). Costs one scan of chunk ids and reading the
        new vectors.
        """
        import faiss

        previous = self._newest_file()
        if previous is None:
            return None
        try:
            index = ff.load_index(previous)
            have = ff.index_ids(index)
        except Exception as exc:  # gone (a run just finished and replaced it) or damaged
            log.debug("FAISS cannot read %s: %s", previous, exc)
            return None
        want = self.documents.chunk_ids()
        removed, added = np.setdiff1d(have, want), np.setdiff1d(want, have)
        if len(removed):
            try:
                index.remove_ids(faiss.IDSelectorBatch(removed))
            except RuntimeError:  # HNSW cannot delete
                pass
        if len(added):
            ids, vecs = self.documents.vectors(added.tolist())
            index.add_with_ids(vecs, ids)
        return index

    def _build_from_sqlite(self):
        ids, vecs = self.documents.vectors()
        return ff.build_index(self.documents.meta("index_type") or "flat", ids, vecs, self.documents.dim)
