"""FAISS files: build, save atomically, load, search (storage.faiss_store keeps them in step).

Vectors are L2-normalised, so inner product is cosine. FAISS ids are chunk ids, so a hit maps
straight back to its row in SQLite. The FAISS file is a derived artifact: SQLite keeps every
vector, and this index can always be rebuilt from them, which is how a crash or a mismatch is
repaired.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from core.choices import INDEX_TYPES

log = logging.getLogger(__name__)

_MIN_POINTS_PER_LIST = 39  # below this, FAISS's k-means warns and IVF recall suffers


def build_index(kind: str, ids: np.ndarray, vectors: np.ndarray, dim: int):
    """A fresh FAISS index of `kind` holding `vectors` under `ids`.

    flat: exact, the default (fast enough to ~1M chunks on a CPU). flat16: the same scan over
    vectors stored as 16-bit floats (IndexScalarQuantizer QT_fp16): half the memory and half the
    bytes a query reads, which is what a one-query scan waits on; a cosine moves by ~1e-4, so an
    order can change only between near ties. ivf: inverted lists, trained on the vectors
    themselves; nprobe is set for recall close to flat. hnsw: graph, no training.
    Search settings from benchmarks/ann.py on 100k real e5 vectors (which crowd together, so ANN
    needs to look wider than on random data): IVF nprobe nlist/8 reached recall@10 0.94, nlist/3
    0.994 at a third of flat's latency; HNSW efSearch 128 reached 0.90, 512 0.977.
    IVF with too few vectors to train falls back to flat rather than giving poor recall.
    """
    import faiss

    if kind not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {INDEX_TYPES}, not {kind!r}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n = len(ids)
    if kind == "ivf":
        nlist = max(1, int(4 * math.sqrt(n)))
        if n < nlist * _MIN_POINTS_PER_LIST or n < 1000:
            log.info("only %d vectors: using a flat index instead of IVF", n)
            kind = "flat"
        else:
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(0).permutation(n)[: nlist * 256]]
            index.train(sample)
            index.nprobe = max(8, nlist // 3)
            index.add_with_ids(vectors, ids)
            return index
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 512
    elif kind == "flat16":
        inner = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)
    if n:
        index.add_with_ids(vectors, ids)
    return index


def save_index(index, path: Path) -> None:
    """Write to a temp file, fsync, rename: a reader sees the old file or the new, never half.

    Through a Python file, not faiss.write_index(path): FAISS reports a write that fails as its
    file is closed (a full disk, `ulimit -f`) only on stderr, and a short file would be renamed
    in. Here any failure raises OSError (ENOSPC, EFBIG, ...) and removes the temp file.
    """
    import faiss

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            faiss.write_index(to_cpu(index), faiss.PyCallbackIOWriter(f.write))
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(tmp)
        raise
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_index(path: Path):
    import faiss

    return faiss.read_index(str(path))


def index_ids(index) -> np.ndarray:
    """The ids an index holds (IDMap-wrapped flat/flat16/HNSW, or IVF), as int64."""
    import faiss

    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    lists = faiss.extract_index_ivf(index).invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(lists.nlist) if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def to_gpu(index):
    """Move to the GPU when FAISS sees one (faiss-gpu installed). HNSW stays on the CPU (FAISS's
    GPU cloner does not take it), and so does flat16: it exists to halve a CPU scan's memory
    traffic, which a GPU does not need; on a GPU use flat."""
    import faiss

    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        return index
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, (faiss.IndexHNSW, faiss.IndexScalarQuantizer)):
        return index
    try:
        res = faiss.StandardGpuResources()
        gpu = faiss.index_cpu_to_gpu(res, 0, index)
        gpu.referenced_resources = res  # keep the resources alive as long as the index
        log.info("FAISS index moved to GPU 0")
        return gpu
    except Exception as exc:  # an unsupported index type stays where it works
        log.warning("FAISS index stays on the CPU: %s", exc)
        return index


def to_cpu(index):
    import faiss

    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index


def search_index(index, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) for one query vector; ids of -1 (fewer than k vectors) are dropped."""
    return search_index_many(index, np.asarray(query).reshape(1, -1), k)[0]


def search_index_many(index, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-k (scores, ids) for each row of `queries`, in one FAISS call (one pass over a flat index)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if index.ntotal == 0 or k <= 0:
        return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
    scores, ids = index.search(queries, min(k, index.ntotal))
    return [(s[keep], i[keep]) for s, i in zip(scores, ids) for keep in [i >= 0]]
