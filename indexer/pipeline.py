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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from core.config import IndexConfig
from core.errors import FileSkipped, InputError, NotEnoughMemoryError
from core.language import detect_language
from core.terms import fts_text
from models.encoder import Encoder
from storage.records import ChunkRecord, DocumentRecord, FileRecord
from storage.store import Store

from .chunker import chunk_text
from .readers import FILE_TYPES, file_type, read_file

log = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["chunks_per_second"] = round(self.chunks_per_second, 2)
        d["seconds"] = round(self.seconds, 2)
        return d


def check_paths(paths: Sequence[Path]) -> list[Path]:
    """Resolve the paths to index; a missing one is fatal before anything is written."""
    if not paths:
        raise InputError("nothing to index — give one or more files or folders: xlsearch index PATH...")
    resolved = []
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            if p.is_symlink():
                raise InputError(f"{p}: broken symbolic link (its target is missing, or it loops) — fix or remove the link")
            raise InputError(f"{p}: no such file or folder — check the path")
        resolved.append(p.resolve())
    return resolved


def discover(roots: Sequence[Path], summary: IndexSummary) -> list[Path]:
    """Files under `roots` with a supported type; explicitly named unsupported files are skipped.

    Hidden files and folders are ignored in walks and symlinked folders are not followed (no loops).
    """
    found: dict[Path, None] = {}
    for root in roots:
        if root.is_file():
            if file_type(root):
                found[root] = None
            else:
                summary.skipped.append((str(root), f"unsupported file type '{root.suffix}' (supported: {', '.join(sorted(FILE_TYPES))})"))
            continue
        unlistable = lambda e: summary.skipped.append((e.filename, f"cannot list folder: {e.strerror}"))  # noqa: E731
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unlistable):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if not name.startswith(".") and file_type(path):
                    try:
                        found[path.resolve() if path.is_symlink() else path] = None
                    except (OSError, RuntimeError):  # a loop: RuntimeError before Python 3.13, OSError after
                        summary.skipped.append((str(path), "symbolic link loop — fix or remove the link"))
    return list(found)


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
    files = discover(roots, summary)
    known = store.documents.file_hashes()
    pending: list[tuple[FileRecord, bool]] = []  # (record, is_update)
    pending_chunks = 0
    bar = tqdm(total=len(files), unit="file", desc="indexing", disable=not progress, dynamic_ncols=True)

    def flush() -> None:
        nonlocal pending, pending_chunks
        if not pending:
            return
        _embed([f for f, _ in pending], encoder, config.batch_size, bar, summary, started)
        store.write_files([f for f, _ in pending])
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
            stat = path.stat()
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
        record = FileRecord(key, sha, stat.st_size, stat.st_mtime, file_type(path) or "", documents)
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
