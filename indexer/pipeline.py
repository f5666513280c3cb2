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
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from core.config import IndexConfig
from core.errors import FileSkipped, NotEnoughMemoryError
from core.language import detect_language
from core.terms import fts_text
from models.encoder import Encoder
from storage.records import ChunkRecord, DocumentRecord, FileRecord
from storage.store import Store

from .chunker import Span, chunk_text
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
        head = head_span(parsed.text, spans, encoder, config.chunk.head_tokens)
        chunks = []
        if head is not None:
            text = parsed.text[head.start : head.end]
            title = "" if parsed.title in text else parsed.title + " "  # the title weighs in the head's terms
            chunks.append(ChunkRecord(head.start, head.end, detect_language(text), head.n_tokens, terms=fts_text(title + text)))
        for s in spans:
            text = parsed.text[s.start : s.end]
            chunks.append(ChunkRecord(s.start, s.end, detect_language(text), s.n_tokens, terms=fts_text(text)))
        documents.append(DocumentRecord(parsed.key, parsed.title, parsed.text, _dominant_language(chunks[head is not None :]), chunks))
    return documents


def head_span(text: str, spans: list[Span], encoder: Encoder, head_tokens: int) -> Span | None:
    """The document's opening as a passage of at most `head_tokens` tokens, on sentence
    boundaries — or None when the document is one passage already (its head adds nothing)."""
    if head_tokens <= 0 or len(spans) < 2:
        return None
    # the opening sentences lie within the first passage; chunking just those is cheap
    first = chunk_text(text[: spans[0].end], encoder, head_tokens, 0)[0]
    return first if first.end < spans[0].end else None


def _dominant_language(chunks: list[ChunkRecord]) -> str:
    weight: dict[str, int] = {}
    for c in chunks:
        weight[c.lang] = weight.get(c.lang, 0) + (c.end - c.start)
    return max(weight, key=weight.get) if weight else "other"


def run_index(
    paths: Sequence[Path], store: Store, encoder: Encoder, config: IndexConfig, progress: bool = True
) -> IndexSummary:
    run = IndexRun(paths, store, config, progress, encoder)
    for path in run.files:
        run.add(path, examine(path, run.known.get(str(path)), encoder, config))
    return run.finish()


def examine(path: Path, known_sha: str | None, encoder: Encoder, config: IndexConfig) -> FileRecord | str | None:
    """One discovered file: its record to store (parsed and chunked, vectors still empty), the
    reason it is skipped, or None when its content still has the hash the index knows."""
    try:
        data = path.read_bytes()
        info = path.stat()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    sha = hashlib.sha256(data).hexdigest()
    if sha == known_sha:
        return None
    try:
        documents = parse_file(path, data, encoder, config)
    except FileSkipped as exc:
        return str(exc)
    return FileRecord(str(path), sha, info.st_size, info.st_mtime, file_type(path) or "text", documents)  # read_file took it as text


def embed_files(files: list[FileRecord], encoder: Encoder, batch_size: int, on_batch: Callable[[int], None] | None = None) -> None:
    """Fill in the vectors of every chunk of `files`, in one `encode` call (batches sorted by length)."""
    chunks = [(doc, c) for f in files for doc in f.documents for c in doc.chunks]
    log.info("embedding %d chunks of %d files (%s runtime)", len(chunks), len(files), encoder.runtime)
    vectors = encoder.encode([doc.text[c.start : c.end] for doc, c in chunks], "passage", batch_size, on_batch)
    for (_, chunk), vector in zip(chunks, vectors):
        chunk.vector = vector


class IndexRun:
    """The writing side of an index run, whoever parses and embeds the files.

    It owns discovery, the hashes the index knows, the summary and the progress bar, commit
    batches of whole files, pruning and the final vector sync. `run_index` hands it what it
    examines itself and lets it embed each batch before it is written (`encoder`);
    indexer/ray_index.py hands it what Ray workers parsed and embedded, in the same order, so
    both write the same batches and SQLite gives their chunks the same ids.
    """

    def __init__(self, paths: Sequence[Path], store: Store, config: IndexConfig, progress: bool = True, encoder: Encoder | None = None):
        self.started = time.monotonic()
        self.store, self.config, self.encoder = store, config, encoder
        self.summary = IndexSummary()
        self.roots = check_paths(paths) if paths else []  # none: only the vectors move (Index.add)
        self.files = discover(self.roots, self.summary, config)
        self.known = store.documents.file_hashes()
        self.bar = ChunkProgress(_sizes(self.files), self.summary, enabled=progress)
        self.pending: list[FileRecord] = []
        self.pending_chunks = self.committed_chunks = 0

    def add(self, path: Path, outcome: FileRecord | str | None) -> None:
        """One file's outcome (see `examine`), in discovery order; a full batch is written."""
        if outcome is None or isinstance(outcome, str):
            if outcome is None:
                self.summary.unchanged += 1
            else:
                self.summary.skipped.append((str(path), outcome))
            self.bar.passed_over(path)
            return
        chunks = sum(len(d.chunks) for d in outcome.documents)
        self.bar.parsed(path, chunks)
        self.pending.append(outcome)
        self.pending_chunks += chunks
        # the first batch is small, so embedding (and the progress bar's rate) starts within
        # seconds on a large collection instead of after 2,048 chunks have been read and cut
        every = self.config.commit_every_chunks
        if self.pending_chunks >= (every if self.committed_chunks else min(FIRST_COMMIT_CHUNKS, every)):
            self.flush()

    def embedded(self, n: int) -> None:
        """`n` more chunk windows embedded (by `encoder` here, or by a worker)."""
        self.summary.chunks += n
        self.bar.embedded(n)

    def flush(self) -> None:
        if not self.pending:
            return
        if self.encoder is not None:
            try:
                embed_files(self.pending, self.encoder, self.config.batch_size, self.embedded)
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                raise self.out_of_memory() from None
        self.store.write_files(self.pending, roots=self.roots)  # the roots: to show paths relative to them
        for record in self.pending:
            is_update = record.path in self.known
            self.summary.updated += is_update
            self.summary.added += not is_update
            self.summary.documents += len(record.documents)
        self.committed_chunks += self.pending_chunks
        self.pending, self.pending_chunks = [], 0

    def out_of_memory(self) -> NotEnoughMemoryError:
        batch_size = self.config.batch_size
        smaller = f"a smaller --batch-size (e.g. {max(1, batch_size // 4)})" if batch_size > 1 else "a smaller --max-tokens"
        return NotEnoughMemoryError(
            f"out of memory embedding chunks in batches of {batch_size} — run again with {smaller}; files committed "
            f"before this ({self.summary.added + self.summary.updated}) are kept and will not be embedded again"
        )

    def finish(self) -> IndexSummary:
        """The last batch, then --prune's removals and the vector sync; the summary."""
        self.flush()
        if self.config.prune:
            gone = [p for p in self.known if _under(p, self.roots) and not os.path.exists(p)]
            if gone:
                self.store.write_files([], removed_paths=gone)
                self.summary.removed = len(gone)
        self.bar.close()
        self.store.sync_vectors()
        self.summary.seconds = time.monotonic() - self.started
        return self.summary


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


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or PyTorch's RuntimeError for a failed allocation (CPU, CUDA or MPS)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)
