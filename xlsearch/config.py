"""Where things live and the knobs of an index run, as plain dataclasses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def xlsearch_home() -> Path:
    """Root of everything xlsearch caches (converted models, the default index)."""
    return Path(os.environ.get("XLSEARCH_HOME") or Path.home() / ".cache" / "xlsearch").expanduser()


def default_db_dir() -> Path:
    """The index used when `--db` is not given: `$XLSEARCH_DB`, else one under the home."""
    env = os.environ.get("XLSEARCH_DB")
    return Path(env).expanduser() if env else xlsearch_home() / "index"


@dataclass
class ChunkConfig:
    """How documents are cut into passages.

    The budget is in model tokens (not characters) because that is what the encoder sees:
    256 tokens is about 150 Chinese characters or 180 English words, small enough for a snippet
    to be one idea, large enough to carry context.
    """

    max_tokens: int = 256
    overlap_tokens: int = 32


@dataclass
class IndexConfig:
    chunk: ChunkConfig
    index_type: str = "flat"  # flat | ivf | hnsw
    batch_size: int = 32
    text_field: str = "text"
    id_field: str | None = None
    prune: bool = False
    commit_every_chunks: int = 2048  # crash loses at most this much embedding work


@dataclass
class SearchConfig:
    """Hybrid ranking: dense scores (standardised) + lexical_weight × share × bm25 / best bm25.

    Only exact terms (identifiers, numbers, names) are matched, and the lexical weight is scaled
    by the share of the query they make up; ordinary words would pull same-language documents
    up (measured: benchmarks/search_modes.py).
    """

    dense_weight: float = 1.0
    lexical_weight: float = 1.0
