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
    bar = tqdm(total=len(files), unit="file", desc="indexing", disable=not progress, dynamic_ncols=True)

    def flush() -> None:
        nonlocal pending, pending_chunks
        if not pending:
            return
        _embed([f for f, _ in pending], encoder, config.batch_size, bar, summary, started)
        store.write_files([f for f, _ in pending], roots=roots)  # the roots: to show paths relative to them
        for record, is_update in pending:
            summary.updated += is_update
            summary.added += not is_update
            summary.documents += len(record.documents)
        pending, pending_chunks = [], 0

    for path in files:
        bar.update(1)
        key = str(path)
        try:
            data = path.read_bytes()
            info = path.stat()
        except OSError as exc:
            summary.skipped.append((key, f"cannot read: {exc.strerror or exc}"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if known.get(key) == sha:
            summary.unchanged += 1
            continue
        try:
            documents = parse_file(path, data, encoder, config)
        except FileSkipped as exc:
            summary.skipped.append((key, str(exc)))
            continue
        record = FileRecord(key, sha, info.st_size, info.st_mtime, file_type(path) or "text", documents)  # read_file took it as text
        pending.append((record, key in known))
        pending_chunks += sum(len(d.chunks) for d in documents)
        if pending_chunks >= config.commit_every_chunks:
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


def _embed(files: list[FileRecord], encoder: Encoder, batch_size: int, bar: tqdm, summary: IndexSummary, started: float) -> None:
    chunks = [(doc, c) for f in files for doc in f.documents for c in doc.chunks]

    def on_batch(n: int) -> None:
        summary.chunks += n
        elapsed = time.monotonic() - started
        bar.set_postfix(chunks=summary.chunks, chunks_per_s=f"{summary.chunks / elapsed:.1f}" if elapsed else "-")

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


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or PyTorch's RuntimeError for a failed allocation (CPU, CUDA or MPS)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)
