"""What an index run hands the store: files, their documents, their chunks (with vectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ChunkRecord:
    start: int  # character offsets into the document text
    end: int
    lang: str
    n_tokens: int
    vector: np.ndarray | None = None
    terms: str = ""  # space-separated lexical terms for the FTS5 index (core.terms)


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
