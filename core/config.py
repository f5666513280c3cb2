"""Where things live and the knobs of an index run, as plain dataclasses."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .choices import PRECISIONS

log = logging.getLogger(__name__)


def xlsearch_home() -> Path:
    """Root of everything xlsearch caches (converted models, the default index)."""
    return Path(os.environ.get("XLSEARCH_HOME") or Path.home() / ".cache" / "xlsearch").expanduser()


def default_db_dir() -> Path:
    """The index used when `--db` is not given: `$XLSEARCH_DB`, else one under the home."""
    env = os.environ.get("XLSEARCH_DB")
    return Path(env).expanduser() if env else xlsearch_home() / "index"


# -- vector stores ---------------------------------------------------------------------------

VECTOR_STORE_ENV = "XLSEARCH_VECTOR_STORE"  # sets --vector-store for `xlsearch index`
# The index's --index-type as a Milvus index: (index type, build params, search params), chosen
# like FAISS's (storage.faiss_files): IVF searches a third of its lists, HNSW a wide beam.
MILVUS_INDEXES = {
    "flat": ("FLAT", {}, {}),
    "ivf": ("IVF_FLAT", {"nlist": 1024}, {"nprobe": 340}),
    "hnsw": ("HNSW", {"M": 32, "efConstruction": 80}, {"ef": 512}),
}
MILVUS_MAX_TOPK = 16384  # Milvus refuses a larger limit per search


# -- encoder precision ----------------------------------------------------------------------

PRECISION_ENV = "XLSEARCH_PRECISION"  # sets --precision for every command that encodes
RUNTIME_ENV = "XLSEARCH_RUNTIME"  # sets --runtime likewise
# What "auto" means on a CPU — the one switch. int8 (models/int8.py: the transformer's linear
# layers quantised per channel after SmoothQuant, the feed-forward output kept fp32) becomes the
# CPU default only if `xlsearch eval --precision int8` loses at most 1 point on every dev cell and
# nothing on same-language, and benchmarks/indexing.py --precision int8 is really faster.
# Measured 2026-12-02 (2-core CPU, default model, docs/eval/default-int8.json): mean bitext .969
# against .970, same-language MRR@10 .444 / .459 against .443 / .456, but libreoffice_ui en→zh
# bitext −1.6 points — and on this CPU (AVX2, no VNNI) it encodes only 1.12x faster
# (benchmarks/quantisation.py; indexing the demo 1.42x its baseline against fp32's 1.05x), while
# auto's ONNX runtime (fast start-up) is fp32-only. So fp32 stays. (The earlier recipe, one
# scale per matrix on every Linear, was 1.4-2x faster but lost up to 3.8 points of bitext and 5 of
# same-language MRR.) On a GPU auto is always fp32 (int8 here is a CPU kernel).
AUTO_PRECISION = "fp32"


def resolve_precision(requested: str, device_type: str) -> str:
    """The precision an encoder on `device_type` ("cpu", "cuda", ...) runs at: "fp32" or "int8".

    int8 asked for on anything but a CPU is ignored with a log line.
    """
    requested = requested.lower()
    if requested == "auto":
        return AUTO_PRECISION if device_type == "cpu" else "fp32"
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "int8" and device_type != "cpu":
        log.info("--precision int8 is for CPUs (dynamic quantisation); running fp32 on %s", device_type)
        return "fp32"
    return requested


@dataclass
class ChunkConfig:
    """How documents are cut into passages.

    The budget is in model tokens (not characters) because that is what the encoder sees:
    256 tokens is about 150 Chinese characters or 180 English words, small enough for a snippet
    to be one idea, large enough to carry context.
    """

    max_tokens: int = 256
    overlap_tokens: int = 32
    # A document longer than one passage also gets a short "head" passage — its opening (a title,
    # a NAME line, a summary sentence) up to this many tokens — as a vector of its own: the best
    # passage alone loses a page whose answer is its title, diluted in a 256-token window
    # (benchmarks/page_retrieval.py). 0: no head passages.
    head_tokens: int = 64


@dataclass
class IndexConfig:
    """The knobs of an index run (`xlsearch index` options, `Index.add(config=...)`)."""

    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    index_type: str | None = None  # flat | ivf | hnsw; None: the index's own ("flat" for a new one)
    vector_store: str | None = None  # faiss | milvus-lite | milvus://HOST:PORT[/COLLECTION]; None: the index's own
    batch_size: int = 32
    text_field: str = "text"
    id_field: str | None = None
    prune: bool = False
    commit_every_chunks: int = 2048  # crash loses at most this much embedding work
    include: tuple[str, ...] = ()  # globs a walked file must match (path under its root, or name); () takes all
    exclude: tuple[str, ...] = ()  # globs for files and folders to leave out
    gitignore: bool = True  # honour .gitignore files in folder walks


@dataclass
class SearchConfig:
    """Hybrid ranking: dense scores (standardised) + lexical_weight × share × bm25 / best bm25.

    Only exact terms (identifiers, numbers, names) are matched, and the lexical weight is scaled
    by the share of the query they make up; ordinary words would pull same-language documents
    up (measured: benchmarks/search_modes.py).
    """

    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    # full-text bm25 of all the query's words, reordering only the query-language documents among
    # themselves (search.same_language); 0: off
    same_language_weight: float = 1.0
