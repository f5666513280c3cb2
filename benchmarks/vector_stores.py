"""FAISS flat / IVF / HNSW against Milvus Lite FLAT / IVF_FLAT / HNSW at 1M vectors, with a projection to 100M.

    python benchmarks/vector_stores.py [--size 1000000] [--queries 200] [--engines faiss-flat,...] [--json] [--out PATH]

Why: the project can keep its vectors in FAISS files or in Milvus (Lite or a server). This measures,
on the same vectors and queries in one run, what each costs at a size past the 100k of ann.py.

Vectors: the chunk vectors of ann.py's cached 100k collection (real e5 vectors of train text;
benchmarks/common.py, `--collection`), grown to `--size` by repetition: the originals once, then
copies with seeded Gaussian noise of sigma = sqrt((1/c^2 - 1)/dim), re-normalised, so a copy's
cosine to its source is about c (`--copy-cosine`, 0.92; the mean measured is in the JSON). Isotropic
noise is a stand-in for new text: copies are as spread as near-paraphrases, no more. Queries: dev
sentences embedded in query mode (as ann.py), so no query equals a stored vector. Ground truth:
exact top 10 by FAISS IndexFlatIP over all vectors.

Each engine runs in its own subprocess, reading the vectors memory-mapped from a .npy file (every
page touched before the baseline): memory = peak RSS minus the RSS once the vectors are loaded
("peak"), and RSS at the end minus it ("after": what the loaded, searchable store holds). The peak
is VmHWM, not ru_maxrss: Linux carries the parent's RSS at fork (its encoder) into ru_maxrss.
FAISS: `storage.faiss_files.build_index` exactly as the project builds it (IVF nlist 4*sqrt(n),
nprobe nlist/3; HNSW M 32, efConstruction 80, efSearch 512); disk = `faiss.write_index` file.
Milvus Lite: a MilvusClient on a fresh folder, the project's schema reduced to id + vector + lang,
inserts of 5,000 rows, flush (and its background compaction), then the index from
core.config.MILVUS_INDEXES (metric IP) and load; build = insert + flush + index, each also apart.
Milvus Lite indexes per segment (at most 100k rows each), so its IVF has nlist 1024 per segment and
its HNSW is many small graphs searched in turn; its disk is the folder (parquet, WAL, index files).
Latency: one search call per query after one untimed warm-up query, k=10, the
project's search params (`client.search(..., output_fields=["id"])` as storage/milvus_store.py),
p50/p99 in ms; Milvus Lite's include its in-process gRPC round trip, as the project pays it.
With pymilvus's default keepalive (a ping every 10 s) a call of minutes fails on Milvus Lite
(GOAWAY too_many_pings, then pymilvus's retry: "index already exists"): at 1M, HNSW's create_index
did; so this client pings hourly (GRPC_OPTIONS). storage/milvus_store.py would meet the same on
any call that long (a load that has to build segment indexes).

Reading the numbers: compare rows of one run only (the machine is shared; timings are noisy).
recall@10 is the share of the exact top 10 found, averaged over queries.

Projection to 100M chunks on a Milvus cluster — ON PAPER, NOT A MEASUREMENT (`projection_100M`):
measured here: bytes per vector of the project's FAISS HNSW (M 32) at `--size` (written file: the
vectors plus the graph), and its single-query p50 at efSearch 512 (taken as the latency of one
segment of up to `--size` vectors). Assumed: 384-d float32 = 1,536 B/vector (150 GB raw at 100M);
Milvus's default segment size of 1 GiB of raw vectors (~700k vectors); query nodes of 64 GB of
which 70% holds loaded segments; 16 cores per node searching its segments in parallel, one
segment per core at a time; one replica; 10 ms for the proxy's fan-out to the nodes, their
top-k reduce and the merge. Expected p50 = ceil(segments per node / cores) x segment p50 + 10 ms.
Recall, p99 and throughput at 100M are not projected.

Writes benchmarks/results/vector-stores-<size>.json (or `--out`); prints a table, or the JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import common  # noqa: E402
from benchmarks.ann import K, build, kind_of, recall_at_k, search_all  # noqa: E402

ENGINES = ("faiss-flat", "faiss-ivf", "faiss-hnsw", "milvus-flat", "milvus-ivf", "milvus-hnsw")
BATCH = 5000
# pymilvus pings every 10 s; Milvus Lite's in-process gRPC server answers a call that runs minutes (create_index
# building HNSW on 1M vectors) with GOAWAY "too_many_pings", and pymilvus retries it: "index already exists".
# Pinging an in-process server is pointless, so the benchmark's client pings hourly (recorded in the JSON).
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 3_600_000, "grpc.keepalive_permit_without_calls": False}
ASSUMED = {"bytes_per_raw_vector": 384 * 4, "segment_raw_bytes": 1024 * 2**20, "node_memory_gb": 64,
           "node_memory_share_for_segments": 0.7, "cores_per_node": 16, "replicas": 1, "fanout_merge_ms": 10.0}


def noise_sigma(dim: int, cosine: float) -> float:
    """Per-coordinate sigma so that v + N(0, sigma^2 I), for unit v, has cosine ~`cosine` to v."""
    return math.sqrt((1 / cosine**2 - 1) / dim)


def sources(n: int, size: int, seed: int) -> np.ndarray:
    """The real vector each of `size` rows comes from: all of them in turn, or a seeded subset."""
    return np.arange(size) % n if size > n else np.sort(np.random.default_rng(seed).permutation(n)[:size])


def grow(vectors: np.ndarray, source: np.ndarray, sigma: float, seed: int, out: np.ndarray) -> float:
    """Fill `out` with vectors[source]: rows past the first len(vectors) get seeded noise and are
    re-normalised. Returns the mean cosine of those noisy copies to their sources (nan if none)."""
    n, size, rng = len(vectors), len(source), np.random.default_rng(seed + 1)
    cos_sum = 0.0
    for start in range(0, size, 50_000):
        rows = np.arange(start, min(size, start + 50_000))
        block = np.array(vectors[source[rows]], np.float32)
        noisy = rows >= n
        if noisy.any():
            orig = block[noisy]
            moved = orig + rng.standard_normal(orig.shape, np.float32) * np.float32(sigma)
            moved /= np.linalg.norm(moved, axis=1, keepdims=True)
            block[noisy] = moved
            cos_sum += float((moved * orig).sum())
        out[start : start + len(rows)] = block
    return cos_sum / (size - n) if size > n else float("nan")


def rss_mb(field: str = "VmRSS") -> float:
    """This process's RSS (or VmHWM: its peak) in MB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# -- one engine, in its own process ---------------------------------------------------------------


def run_faiss(kind: str, vectors, queries: np.ndarray, data: Path) -> dict:
    import faiss

    ids = np.arange(len(vectors), dtype=np.int64)
    index, build_s = build(kind, ids, vectors)
    index.search(queries[:1], K)  # warm-up, untimed
    found, single, batch = search_all(index, queries)
    core = faiss.extract_index_ivf(index) if kind_of(index) == "ivf" else faiss.downcast_index(getattr(index, "index", index))
    params = ({"nlist": core.nlist, "nprobe": core.nprobe} if kind_of(index) == "ivf" else
              {"M": core.hnsw.nb_neighbors(1), "efConstruction": core.hnsw.efConstruction, "efSearch": core.hnsw.efSearch}
              if kind_of(index) == "hnsw" else {})
    out = {"built_as": kind_of(index), "params": params, "build_s": round(build_s, 2), "single": single, "batch": batch,
           "found": found.tolist()}
    out["memory_after_mb"] = rss_mb()  # before writing the file, so its buffers are not counted
    path = data / f"faiss-{kind}.index"
    faiss.write_index(index, str(path))
    out["disk_bytes"] = path.stat().st_size
    path.unlink()
    return out


def lite_segments(folder: Path, name: str):
    """Milvus Lite's in-process collection, to wait for its background compaction and read its segments."""
    from milvus_lite.server_manager import server_manager_instance

    return server_manager_instance._servers[os.path.abspath(folder)][1].get_collection(name)


def run_milvus(kind: str, vectors, langs: np.ndarray, queries: np.ndarray, data: Path) -> dict:
    from pymilvus import DataType, MilvusClient

    from core.config import MILVUS_INDEXES

    index_type, build_params, search_params = MILVUS_INDEXES[kind]
    folder, name = data / f"milvus-{kind}.db", "chunks"
    client = MilvusClient(str(folder), grpc_options=GRPC_OPTIONS)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    schema.add_field("lang", DataType.VARCHAR, max_length=16)
    client.create_collection(name, schema=schema)
    t = time.perf_counter()
    for start in range(0, len(vectors), BATCH):
        block = np.asarray(vectors[start : start + BATCH])
        client.insert(name, [{"id": start + i, "vector": v, "lang": str(langs[start + i])} for i, v in enumerate(block)])
    insert_s = time.perf_counter() - t
    t = time.perf_counter()
    client.flush(name)
    lite_segments(folder, name)._wait_for_bg()  # the compaction the flushes started
    flush_s = time.perf_counter() - t
    t = time.perf_counter()
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=build_params)
    client.create_index(name, params)
    client.load_collection(name)
    lite_segments(folder, name)._wait_for_bg()
    index_s = time.perf_counter() - t
    times, found = [], []
    client.search(name, data=[queries[0].tolist()], limit=K, search_params={"metric_type": "IP", "params": search_params})
    for q in queries:  # after that warm-up, untimed
        t = time.perf_counter()
        hits = client.search(name, data=[q.tolist()], limit=K, output_fields=["id"],
                             search_params={"metric_type": "IP", "params": search_params})[0]
        times.append((time.perf_counter() - t) * 1000)
        found.append(([int(h["id"]) for h in hits] + [-1] * K)[:K])
    segments = sorted(s.num_rows for s in lite_segments(folder, name)._segments_snapshot())
    out = {"built_as": index_type, "params": {"build": build_params, "search": search_params}, "grpc_options": GRPC_OPTIONS,
           "build_s": round(insert_s + flush_s + index_s, 2), "insert_s": round(insert_s, 2),
           "flush_s": round(flush_s, 2), "index_s": round(index_s, 2), "segments": len(segments),
           "segment_rows": {"min": segments[0], "max": segments[-1]} if segments else None,
           "single": common.latency_summary(times, 3), "found": found, "memory_after_mb": rss_mb()}
    client.close()
    out["disk_bytes"] = folder_bytes(folder)
    return out


def worker(engine: str, data: Path) -> dict:
    import faiss  # noqa: F401  (imported before the baseline, like pymilvus below)

    if engine.startswith("milvus"):
        import milvus_lite.server_manager  # noqa: F401
        import pymilvus  # noqa: F401
    vectors = np.load(data / "vectors.npy", mmap_mode="r")
    for start in range(0, len(vectors), 100_000):  # fault every page in: they are the baseline
        float(vectors[start : start + 100_000].sum())
    queries, base = np.load(data / "queries.npy"), rss_mb()
    kind = engine.split("-")[1]
    if engine.startswith("faiss"):
        out = run_faiss(kind, vectors, queries, data)
    else:
        out = run_milvus(kind, vectors, np.load(data / "langs.npy"), queries, data)
    # ru_maxrss keeps the parent's RSS at fork across exec (1.2 GB of encoder here), so it would hide a smaller
    # peak; VmHWM is the same peak RSS counted from exec. Both are in the JSON.
    peak, maxrss = rss_mb("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out | {"rss_baseline_mb": round(base, 1), "memory_peak_mb": round(peak - base, 1), "ru_maxrss_mb": round(maxrss, 1),
                  "memory_after_mb": round(out["memory_after_mb"] - base, 1)}


# -- the run ----------------------------------------------------------------------------------------


def run_engine(engine: str, data: Path, timeout_min: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--data", str(data)]
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_min * 60)
        out = json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else {
            "error": f"exit status {done.returncode}: {done.stderr[-2000:]}"}
    except subprocess.TimeoutExpired:
        out = {"error": f"timed out after {timeout_min} min (killed)"}
    return out | {"process_s": round(time.perf_counter() - t, 1)}


def projection(results: dict, size: int, dim: int) -> dict | None:
    hnsw = results.get("faiss-hnsw", {})
    if "error" in hnsw or "single" not in hnsw:
        return None
    a, n, lite = ASSUMED, 100_000_000, results.get("milvus-hnsw", {})
    per_vector = hnsw["disk_bytes"] / size
    total = per_vector * n
    nodes = math.ceil(total / (a["node_memory_gb"] * 1e9 * a["node_memory_share_for_segments"])) * a["replicas"]
    segment_vectors = a["segment_raw_bytes"] // a["bytes_per_raw_vector"]
    segments = math.ceil(n / segment_vectors)
    per_node = math.ceil(segments / (nodes // a["replicas"]))
    segment_p50 = hnsw["single"]["p50_ms"]
    return {
        "what": "PROJECTION ON PAPER, NOT A MEASUREMENT: 100M chunks on a Milvus cluster with the project's HNSW",
        "measured_here": {"hnsw_bytes_per_vector": round(per_vector, 1), "hnsw_vectors": size, "dim": dim,
                          "segment_p50_ms_at_efSearch_512": segment_p50,
                          "milvus_lite_hnsw_memory_after_mb_per_1M": round(lite["memory_after_mb"] / size * 1e6, 1)
                          if "memory_after_mb" in lite else None},
        "assumed": a | {"note": "384-d float32; Milvus default segment maxSize 1 GiB of raw vectors; node size, usable "
                                "share, cores, replicas and the fan-out/merge overhead are assumptions, not measured"},
        "raw_vectors_gb": round(n * a["bytes_per_raw_vector"] / 1e9, 1), "hnsw_index_gb": round(total / 1e9, 1),
        "query_nodes": nodes, "memory_per_node_gb": round(total / (nodes // a["replicas"]) / 1e9, 1),
        "segments": segments, "vectors_per_segment": segment_vectors, "segments_per_node": per_node,
        "expected_p50_ms": round(math.ceil(per_node / a["cores_per_node"]) * segment_p50 + a["fanout_merge_ms"], 1),
        "formula": "p50 = ceil(segments_per_node / cores_per_node) * segment_p50 + fanout_merge_ms; "
                   "nodes = ceil(hnsw_index_gb / (node_memory_gb * share)) * replicas",
    }


def table(r: dict) -> str:
    lines = [f"{r['vectors']} vectors (dim {r['dim']}, {r['source_vectors']} real + noisy copies, sigma {r['sigma']:.4f}, "
             f"copy cosine {r['copy_cosine_measured']}), {r['queries']} queries; {r['machine']['cpu_count']} CPUs",
             f"{'engine':<13}{'build s':>9}{'peak MB':>9}{'after MB':>9}{'disk MB':>9}{'recall@10':>10}{'p50 ms':>9}"
             f"{'p99 ms':>9}  notes"]
    for name, e in r["engines"].items():
        if "error" in e:
            lines.append(f"{name:<13}ERROR: {e['error'][:200]}")
            continue
        note = (f"insert {e['insert_s']} + flush {e['flush_s']} + index {e['index_s']} s, {e['segments']} segments"
                if "insert_s" in e else f"built as {e['built_as']}")
        lines.append(f"{name:<13}{e['build_s']:>9}{e['memory_peak_mb']:>9.0f}{e['memory_after_mb']:>9.0f}"
                     f"{e['disk_bytes'] / 2**20:>9.0f}{e['recall@10']:>10.4f}{e['single']['p50_ms']:>9.2f}"
                     f"{e['single']['p99_ms']:>9.2f}  {note}; {e['params']}")
    p = r["projection_100M"]
    if p:
        lines.append(f"PROJECTION (on paper, not measured) for 100M on a Milvus cluster: {p['query_nodes']} query nodes, "
                     f"{p['memory_per_node_gb']} GB of HNSW each, {p['segments_per_node']} segments per node, "
                     f"p50 ~{p['expected_p50_ms']} ms")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000, help="vectors to measure")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--collection", type=int, default=100_000, help="the cached collection whose vectors are grown")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="base")
    ap.add_argument("--db", type=Path, default=None, help="the vectors of this index instead of the cached collection")
    ap.add_argument("--copy-cosine", type=float, default=0.92, help="target cosine of a noisy copy to its source")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--timeout-min", type=float, default=40.0, help="per engine; a slower one is recorded as timed out")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data)))
        return

    import faiss

    from models.loading import load_encoder
    from storage.store import Store

    started = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    db, _, model = common.collection_from_args(argparse.Namespace(size=args.collection, seed=args.seed, model=args.model, db=args.db))
    ids, real = common.store_vectors(db)
    with Store.open(db) as store:
        lang_of = dict(store.documents.db.execute("select id, lang from chunks").fetchall())
    texts = [q["text"] for q in common.dev_queries(args.queries, args.seed, common.load_tokenizer(model), common.collection_texts_in(db))]
    queries = np.ascontiguousarray(load_encoder(str(model), runtime="torch").encode(texts, "query"), np.float32)
    sigma = noise_sigma(real.shape[1], args.copy_cosine)
    results = {}
    with tempfile.TemporaryDirectory(prefix="vector-stores-") as tmp:
        data = Path(tmp)
        vectors = np.lib.format.open_memmap(data / "vectors.npy", "w+", np.float32, (args.size, real.shape[1]))
        source = sources(len(ids), args.size, args.seed)
        copy_cos = grow(real, source, sigma, args.seed, vectors)
        vectors.flush()
        np.save(data / "langs.npy", np.array([lang_of[int(i)] for i in ids])[source])  # lang only fills the schema
        np.save(data / "queries.npy", queries)
        log(f"{args.size} vectors written; exact search for the ground truth")
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(np.asarray(vectors))
        truth = exact.search(queries, K)[1]
        del exact, vectors
        for engine in args.engines.split(","):
            log(f"{engine} ...")
            results[engine] = run_engine(engine, data, args.timeout_min)
            if "found" in results[engine]:
                results[engine]["recall@10"] = recall_at_k(truth, np.array(results[engine].pop("found")))
            log(f"{engine}: {({k: v for k, v in results[engine].items() if k not in ('single', 'batch')})}")
            shutil.rmtree(data / f"milvus-{engine.split('-')[1]}.db", ignore_errors=True)  # gigabytes at 1M
    report = {"vectors": args.size, "dim": int(real.shape[1]), "source_vectors": len(ids), "queries": len(texts),
              "sigma": sigma, "copy_cosine_target": args.copy_cosine,
              "copy_cosine_measured": round(copy_cos, 4) if not math.isnan(copy_cos) else None,
              "collection": str(db), "k": K, "engines": results,
              "projection_100M": projection(results, args.size, int(real.shape[1])),
              "wall_s": round(time.perf_counter() - started, 1), "machine": common.machine_info(), **common.stamp()}
    common.write_result(report, args.out or common.RESULTS / f"vector-stores-{args.size}.json", args.json, table(report))


if __name__ == "__main__":
    main()
