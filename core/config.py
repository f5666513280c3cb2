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
# What "auto" means on a CPU for bulk work (indexing, embed, eval; queries and the server run on
# ONNX Runtime for its start-up: models/loading.py) — the one switch, decided by measurement.
# bf16 (models/torch_encoder.py: the transformer's weights and activations in bfloat16, pooling
# and everything after it fp32) is auto on a CPU with bf16 matrix instructions, where oneDNN has
# real bf16 kernels: AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake) or AMX-BF16 tiles
# (Intel Sapphire Rapids and later). Measured 2026-12-06 on a 2-core AMD EPYC with AVX512-BF16
# (benchmarks/results/quantisation-avx512bf16.json): the default model encodes 1.91x faster than fp32, vectors
# at cosine .9999 to fp32's; `xlsearch eval --precision bf16` in docs/eval/default-bf16.json.
# (No AMX machine was measured; oneDNN runs bf16 matrix products on its tiles too.) Without these
# flags oneDNN has no native bf16 matrix kernels, so auto stays fp32 (bf16 there is not measured).
# int8 (models/int8.py: per-channel after SmoothQuant, the feed-forward output kept fp32) is never
# auto: 1.12x on an AVX2 CPU, 1.48x on the AVX512-VNNI one — below bf16 there — and it lost 1.6
# points of libreoffice_ui en→zh bitext (docs/eval/default-int8.json). On a GPU auto is fp32.
# An indexing job this small runs as a query does (ONNX Runtime, fp32, ready ~5 s sooner than
# PyTorch): measured on the AVX512-BF16 EPYC (benchmarks/results/runtimes-avx512bf16.json),
# PyTorch bf16 pays its extra ~5.1 s of loading back after ~33k tokens, ~120 KB of demo text.
SMALL_INDEX_JOB_BYTES = 128 * 1024
CPU_FLAGS_FILE = Path("/proc/cpuinfo")
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # the CPU features that make bf16 the CPU's auto
# What "auto" means for queries (a search, a server) where the model has an int8 graph
# (models/onnx_int8.py): int8 on a CPU with int8 dot-product instructions (VNNI), where ONNX
# Runtime's int8 MatMul runs on them. Measured 2026-12-07 on the 2-core AVX512-VNNI EPYC: a
# query's encode 1.47x fp32's at batch 1 and 8 (benchmarks/results/search-profile-100000-onnx-
# int8-avx512vnni.json), and int8 queries against fp32 passages lost at most 0.20 points on any
# dev cell and nothing on same-language (benchmarks/results/asymmetric-queries-int8.json). Without
# VNNI it is not measured, so auto stays fp32 there.
INT8_CPU_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: macOS, Windows),
    read without importing torch, so a search that runs on ONNX Runtime stays light."""
    try:
        text = (cpuinfo or CPU_FLAGS_FILE).read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def auto_cpu_precision(cpuinfo: Path | None = None) -> str:
    """What --precision auto means for bulk work on this machine's CPU: "bf16" with AVX512-BF16 or
    AMX-BF16, else "fp32"."""
    return "bf16" if BF16_CPU_FLAGS & cpu_flags(cpuinfo) else "fp32"


def auto_query_precision(cpuinfo: Path | None = None) -> str:
    """What --precision auto means for queries on ONNX Runtime: "int8" with VNNI, else "fp32"."""
    return "int8" if INT8_CPU_FLAGS & cpu_flags(cpuinfo) else "fp32"


def resolve_precision(requested: str, device_type: str) -> str:
    """The precision an encoder on `device_type` ("cpu", "cuda", ...) runs at: "fp32", "bf16" or "int8".

    int8 asked for on anything but a CPU is ignored with a log line; bf16 runs anywhere torch
    has bfloat16 kernels (on a GPU: Ampere and later).
    """
    requested = requested.lower()
    if requested == "auto":
        return auto_cpu_precision() if device_type == "cpu" else "fp32"
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
    index_type: str | None = None  # flat | flat16 | ivf | hnsw; None: the index's own ("flat" for a new one)
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
    # ...over the query's this many rarest words (fewest chunks hold them; 0: all): bm25's cost
    # follows the postings it scores, and a word many chunks hold tells them apart least
    same_language_words: int = 4
