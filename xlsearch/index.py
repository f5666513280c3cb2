"""The Python API: one object is an opened index with its model.

    import xlsearch

    with xlsearch.Index("./idx", create=True) as index:
        index.add(["~/notes"])                       # incremental, as `xlsearch index`
        for hit in index.search("图层蒙版"):           # hits in both languages
            print(hit.rank, hit.doc_lang, hit.title, hit.path)

The CLI and the web app are thin layers over this class, so opening an index, finding the model
it was built with and checking that the model matches happen in one place. Everything is loaded
when first needed: `info()` reads the database without loading a model; `add()` takes the write
lock only while it runs, so an open Index can search while another process indexes.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from core.config import SMALL_INDEX_JOB_BYTES, IndexConfig, SearchConfig
from core.errors import InputError
from indexer.discovery import check_paths, holds_at_least
from indexer.pipeline import run_index
from indexer.ray_index import run_index_ray
from indexer.summary import IndexSummary
from models.encoder import Encoder
from models.loading import load_encoder
from search.searcher import Hit, SearchRequest, search_batch
from search.summarize import AbstractiveSummarizer, Summary, SummaryConfig, summarize_hits
from storage.store import Store
from storage.store import exists as index_exists


def relative_path(path: str, roots: Sequence[str]) -> str:
    """`path` relative to the root it lies under (the innermost), its name if it is a root, else
    as it is: what a reader needs to tell hits apart, without the prefix they all share."""
    if path in roots:
        return Path(path).name
    under = [r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)]
    return path[len(max(under, key=len).rstrip(os.sep)) + 1 :] if under else path


class Index:
    """An index directory with the model its vectors were made with.

    `model`: a name ("default", "fast", "base", "base-centered") or a local model folder; None takes the
    model the index recorded (or the default for a new index). `create`: allow a directory that
    holds no index yet (it is created by the first `add`). `summarizer`: a local transformers
    model folder that rewrites summaries (default: extractive only). Thread-safe: one lock
    serialises use of the SQLite connection.
    """

    def __init__(
        self,
        db: str | os.PathLike,
        model: str | os.PathLike | None = None,
        precision: str = "auto",
        create: bool = False,
        summarizer: str | os.PathLike | None = None,
        search_config: SearchConfig | None = None,
        runtime: str = "auto",
    ):
        self.db = Path(db).expanduser()
        if not create and not index_exists(self.db):
            raise InputError(f"no index at {self.db} — create one with `xlsearch index PATH --db {self.db}`")
        self._model_spec = model
        self._precision = precision
        self._runtime = runtime
        self._summarizer_spec = summarizer
        self._search_config = search_config or SearchConfig()
        self._store: Store | None = None
        self._encoder: Encoder | None = None
        self._summarizer: AbstractiveSummarizer | None = None
        self._checked = False
        self._lock = threading.RLock()

    # -- opening ------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The index opened for reading (on first use)."""
        with self._lock:
            if self._store is None:
                self._store = Store.open(self.db)
            return self._store

    @property
    def encoder(self) -> Encoder:
        """The model: `model` if given, else the one the index recorded, loaded on first use —
        for queries, unless `add` (of at least `SMALL_INDEX_JOB_BYTES` of files) loaded it first
        for bulk work (what "auto" means for each: models.loading.load_encoder)."""
        return self._load_encoder(bulk=False, queries=True)

    def _load_encoder(self, bulk: bool, queries: bool = False) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self._model_spec, self._recorded_model(), self._precision, self._runtime, bulk=bulk,
                                             queries=queries)
            return self._encoder

    def _passage_encoder(self, paths: Sequence[Path]) -> Encoder:
        """The encoder `add` embeds passages with: the loaded one, unless "auto" chose int8 for it
        as a query encoder (measured for queries only, models/loading.py), which is replaced. A
        model loaded here is loaded for bulk work if the job holds `SMALL_INDEX_JOB_BYTES`."""
        with self._lock:
            if self._encoder is not None and self._precision == "auto" and self._encoder.precision == "int8":
                self._encoder = None
            if self._encoder is None:  # sizes are counted only when this call is the one that loads the model
                return self._load_encoder(bulk=holds_at_least(paths, SMALL_INDEX_JOB_BYTES))
            return self._encoder

    def _recorded_model(self) -> str | None:
        if self._store is not None:
            return self._store.model_identity.path
        if not index_exists(self.db):
            return None
        with Store.open(self.db) as store:
            return store.model_identity.path

    def _ready(self) -> tuple[Store, Encoder]:
        """The store and a model checked against it — the one open-and-check sequence."""
        store = self.store
        encoder = self.encoder
        if not self._checked:
            store.check_model(encoder.identity)
            self._checked = True
        return store, encoder

    def load(self) -> Index:
        """Load and check everything now — the index, the model and their match, the summarizer —
        rather than on first use: a server then refuses to start on a mistake instead of failing
        its first visitor."""
        with self._lock:
            self._ready()
            if self._summarizer_spec and self._summarizer is None:
                self._summarizer = AbstractiveSummarizer(self._summarizer_spec)
        return self

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
                self._checked = False

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def add(
        self, paths: Sequence[str | os.PathLike], config: IndexConfig | None = None, progress: bool = False,
        ray: bool | str = False,
    ) -> IndexSummary:
        """Index files and folders, incrementally: unchanged files (same content hash) are not
        embedded again, changed ones are replaced; with `config.prune`, files under `paths`
        that no longer exist are dropped. Holds the write lock while it runs.

        No paths with `config.index_type` or `config.vector_store` set rebuilds an existing
        index's vectors that way and changes nothing else.

        `ray`: read, chunk and embed on a Ray cluster — True for a local one, or a cluster's
        address ("HOST:6379", "ray://HOST:10001", "auto"); the index comes out as a plain run's."""
        config = config or IndexConfig()
        # No paths but a new index type or vector store for an existing index: only the vectors
        # move (rebuilt from SQLite at the run's end), nothing is read or embedded.
        moving = not paths and bool(config.index_type or config.vector_store) and index_exists(self.db)
        paths = [] if moving else check_paths([Path(p) for p in paths])  # a missing path fails before a model loads
        encoder = self._passage_encoder(paths)
        with Store.open_for_writing(
            self.db, encoder.identity, config.index_type, precision=encoder.precision, vectors=config.vector_store
        ) as writer:
            if ray is not False:
                return run_index_ray(paths, writer, encoder, config, None if ray is True else ray, progress=progress)
            return run_index(paths, writer, encoder, config, progress=progress)

    # -- reading ------------------------------------------------------------------------------

    def search(self, query: str | SearchRequest, **options) -> list[Hit]:
        """Ranked hits, one per document. `query` is a string (with `SearchRequest`'s fields as
        keyword options: k, lang, balance, mode, filters, offset, semantic_snippets) or a
        `SearchRequest`. A bad request raises InputError."""
        request = query if isinstance(query, SearchRequest) else SearchRequest(query, **options)
        [result] = self.search_batch([request])
        if isinstance(result, InputError):
            raise result
        return result

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[Hit] | InputError]:
        """Several searches answered together (one model call, one vector pass); a request with
        bad input gets its InputError in its place, the others are answered."""
        with self._lock:
            store, encoder = self._ready()
            return search_batch(store, encoder, requests, self._search_config)

    def summarize(self, query: str, hits: list[Hit] | None = None, k: int = 5, config: SummaryConfig | None = None) -> Summary:
        """A cited summary of `hits` (default: this query's top `k`) in the query's language."""
        if hits is None:
            hits = self.search(query, k=k)
        with self._lock:
            store, encoder = self._ready()
            if self._summarizer_spec and self._summarizer is None:
                self._summarizer = AbstractiveSummarizer(self._summarizer_spec)
            return summarize_hits(store, encoder, query, hits, config, abstractive=self._summarizer)

    def info(self) -> dict:
        """Files, documents and chunks per language, model, vector store, size (no model load)."""
        with self._lock:
            return self.store.info()

    def examples(self) -> dict[str, str]:
        """One short document title per language, to offer as example queries (a leading section
        number like "1.2.4." is no part of what a person would type)."""
        with self._lock:
            titles = self.store.documents.example_titles()
        return {lang: re.sub(r"^[\d.]+\s+", "", found[0]) for lang, found in titles.items() if found}

    def roots(self) -> list[str]:
        """The folders and files that `add` (or `xlsearch index`) was given."""
        with self._lock:
            return self.store.documents.roots()

    def relative_path(self, path: str) -> str:
        """`path` relative to the indexed folder it lies under (see `relative_path`)."""
        return relative_path(path, self.roots())

    def document(self, doc_id: int) -> dict | None:
        """A document's id, title, path, key, lang and text, or None."""
        with self._lock:
            return self.store.documents.document(doc_id)

    def chunk_span(self, doc_id: int, chunk_id: int) -> tuple[int, int] | None:
        """Where a chunk (a hit's `chunk_id`) lies in its document, or None."""
        with self._lock:
            return self.store.documents.chunk_span(doc_id, chunk_id)
