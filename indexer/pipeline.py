"""An index run: find files, skip the unchanged, parse, chunk, embed, store — incrementally.

A file is identified by its resolved path and its content by SHA-256: an unchanged file costs a
read and a hash, never an embedding. Work is committed in batches of whole files, so a crash
loses at most one batch and never leaves half a file; the FAISS file is brought in line with
SQLite once at the end (and on the next open if the run died first).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from core.config import IndexConfig
from core.errors import FileSkipped, NotEnoughMemoryError
from core.language import detect_language
from core.terms import fts_text
from models.encoder import Encoder
from storage.records import ChunkRecord, DocumentRecord, FileRecord
from storage.store import Store

from .chunker import chunk_text
from .discovery import check_paths, discover
from .filetypes import file_type
from .readers import read_file
from .summary import IndexSummary

log = logging.getLogger(__name__)
FIRST_COMMIT_CHUNKS = 256


def parse_file(path: Path, data: bytes, encoder: Encoder, config: IndexConfig) -> list[DocumentRecord]:
    """One file's documents with their chunks (vectors still empty)."""
    documents = []
    for parsed in read_file(path, data, config.text_field, config.id_field):
        spans = chunk_text(parsed.text, encoder, config.chunk.max_tokens, config.chunk.overlap_tokens)
        chunks = []
        for s in spans:
            text = parsed.text[s.start : s.end]
            chunks.append(ChunkRecord(s.start, s.end, detect_language(text), s.n_tokens, terms=fts_text(text)))
        documents.append(DocumentRecord(parsed.key, parsed.title, parsed.text, _dominant_language(chunks), chunks))
    return documents


def _dominant_language(chunks: list[ChunkRecord]) -> str:
    weight: dict[str, int] = {}
    for c in chunks:
        weight[c.lang] = weight.get(c.lang, 0) + (c.end - c.start)
    return max(weight, key=weight.get) if weight else "other"


def run_index(
    paths: Sequence[Path], store: Store, encoder: Encoder, config: IndexConfig, progress: bool = True
) -> IndexSummary:
    started = time.monotonic()
    summary = IndexSummary()
    roots = check_paths(paths)
    files = discover(roots, summary, config)
    known = store.documents.file_hashes()
    pending: list[tuple[FileRecord, bool]] = []  # (record, is_update)
    pending_chunks = 0
    bar = ChunkProgress(_sizes(files), summary, enabled=progress)

    def flush() -> None:
        nonlocal pending, pending_chunks
        if not pending:
            return
        _embed([f for f, _ in pending], encoder, config.batch_size, bar, summary)
        store.write_files([f for f, _ in pending], roots=roots)  # the roots: to show paths relative to them
        for record, is_update in pending:
            summary.updated += is_update
            summary.added += not is_update
            summary.documents += len(record.documents)
        pending, pending_chunks = [], 0

    for path in files:
        key = str(path)
        try:
            data = path.read_bytes()
            info = path.stat()
        except OSError as exc:
            summary.skipped.append((key, f"cannot read: {exc.strerror or exc}"))
            bar.passed_over(path)
            continue
        sha = hashlib.sha256(data).hexdigest()
        if known.get(key) == sha:
            summary.unchanged += 1
            bar.passed_over(path)
            continue
        try:
            documents = parse_file(path, data, encoder, config)
        except FileSkipped as exc:
            summary.skipped.append((key, str(exc)))
            bar.passed_over(path)
            continue
        bar.parsed(path, sum(len(d.chunks) for d in documents))
        record = FileRecord(key, sha, info.st_size, info.st_mtime, file_type(path) or "text", documents)  # read_file took it as text
        pending.append((record, key in known))
        pending_chunks += sum(len(d.chunks) for d in documents)
        # the first batch is small, so embedding (and the progress bar's rate) starts within
        # seconds on a large collection instead of after 2,048 chunks have been read and cut
        if pending_chunks >= (config.commit_every_chunks if summary.chunks else min(FIRST_COMMIT_CHUNKS, config.commit_every_chunks)):
            flush()
    flush()

    if config.prune:
        gone = [p for p in known if _under(p, roots) and not os.path.exists(p)]
        if gone:
            store.write_files([], removed_paths=gone)
            summary.removed = len(gone)
    bar.close()
    store.sync_vectors()
    summary.seconds = time.monotonic() - started
    return summary


def _embed(files: list[FileRecord], encoder: Encoder, batch_size: int, bar: ChunkProgress, summary: IndexSummary) -> None:
    chunks = [(doc, c) for f in files for doc in f.documents for c in doc.chunks]
    log.info("embedding %d chunks of %d files (%s runtime)", len(chunks), len(files), encoder.runtime)

    def on_batch(n: int) -> None:
        summary.chunks += n
        bar.embedded(n)

    try:
        vectors = encoder.encode([doc.text[c.start : c.end] for doc, c in chunks], "passage", batch_size, on_batch)
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        smaller = f"a smaller --batch-size (e.g. {max(1, batch_size // 4)})" if batch_size > 1 else "a smaller --max-tokens"
        raise NotEnoughMemoryError(
            f"out of memory embedding chunks in batches of {batch_size} — run again with {smaller}; files committed "
            f"before this ({summary.added + summary.updated}) are kept and will not be embedded again"
        ) from None
    for (_, chunk), vector in zip(chunks, vectors):
        chunk.vector = vector


class ChunkProgress:
    """The bar of an index run, in chunks embedded, with tqdm's rate and ETA, and the file counts.

    Chunks are only known once a file is parsed, so the total is an estimate that sharpens as the
    run goes: the chunks of the files parsed so far, plus the bytes still to read at the same
    chunks per byte. Files passed over (unchanged, skipped) leave the estimate; nothing is
    guessed before the first file is parsed. Shown only on a terminal (tqdm's `disable=None`),
    never with --json or -q.
    """

    def __init__(self, sizes: dict[Path, int], summary: IndexSummary, enabled: bool = True):
        self.sizes, self.summary = sizes, summary
        self.bytes_left = sum(sizes.values())  # of files not yet read
        self.parsed_bytes = self.parsed_chunks = 0
        self.bar = tqdm(total=None, unit="chunk", desc="embedding", disable=None if enabled else True, dynamic_ncols=True)

    def passed_over(self, path: Path) -> None:
        self.bytes_left -= self.sizes.get(path, 0)
        self._show()

    def parsed(self, path: Path, chunks: int) -> None:
        size = self.sizes.get(path, 0)
        self.bytes_left -= size
        self.parsed_bytes += size
        self.parsed_chunks += chunks
        self._show()

    def embedded(self, n: int) -> None:
        self.bar.update(n)

    def estimate(self) -> int | None:
        """Chunks this run will embed in all, as far as can be told now."""
        if not self.parsed_bytes:
            return None
        return self.parsed_chunks + round(max(self.bytes_left, 0) * self.parsed_chunks / self.parsed_bytes)

    def _show(self) -> None:
        if self.bar.disable:
            return
        estimate = self.estimate()
        if estimate is not None:
            self.bar.total = max(estimate, self.bar.n)
        s = self.summary
        self.bar.set_postfix_str(f"{s.found} files: {s.unchanged} unchanged, {len(s.skipped)} skipped", refresh=True)

    def close(self) -> None:
        self.bar.total = self.bar.n  # what was embedded is the whole
        self.bar.close()


def _sizes(files: Sequence[Path]) -> dict[Path, int]:
    sizes = {}
    for path in files:
        try:
            sizes[path] = path.stat().st_size
        except OSError:  # read later, and skipped then with the reason
            sizes[path] = 0
    return sizes


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or PyTorch's RuntimeError for a failed allocation (CPU, CUDA or MPS)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)
