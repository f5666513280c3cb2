"""FAISS indexes (flat16, IVF, HNSW) against exact flat search, and a projection to 10M vectors.

    python benchmarks/ann.py [--size 100000] [--queries 1000] [--model base] [--json]
    python benchmarks/ann.py --db DIR          # the vectors of an existing index instead

Vectors: every chunk vector of the collection that benchmarks/http_latency.py serves (the same
cached `xlsearch index` build, see benchmarks/common.py; built here if missing), read from
SQLite. Queries: `--queries` dev sentences (2-64 tokens, half English, half Chinese, seeded, none
a text of the collection), embedded by the index's model in query mode (`Encoder.encode`).

Indexes are built exactly as the project builds them, by `storage.faiss_files.build_index`:
flat (IndexFlatIP); flat16 (the same scan over fp16 vectors, IndexScalarQuantizer QT_fp16); IVF
(nlist = 4·sqrt(n), trained on up to 256·nlist of the vectors, the project's nprobe = max(8, nlist/3); below ~24k vectors the project uses flat instead, and so
does this script); HNSW (M = 32, efConstruction 80, the project's efSearch 512). For each:
build time (training + adding), size (`faiss.serialize_index`, which is also about its memory),
and per search setting (an nprobe sweep for IVF, an efSearch sweep for HNSW): recall@10 (the share
of exact flat search's top 10 that the index returns, averaged over queries), latency of one
query at a time (p50/p99 over the queries, one `search` call each) and batched (all queries in
one call, ms per query). The first setting whose recall@10 reaches 0.98 is reported.

Projection to 10M vectors — an extrapolation from at most `--size` vectors, not a measurement:
- memory: serialized bytes per vector at full size × 10M (IVF: its coarse quantizer counted
  apart, at the nlist the project would pick for 10M). The project also keeps every vector, its
  text and FTS terms in SQLite: that file's bytes per chunk are measured on the collection and
  projected the same way.
- latency: each index is rebuilt on seeded subsets (`--scaling`, fractions of the collection) and
  queried one at a time at a fixed setting — flat and flat16; IVF at the nprobe/nlist fraction that reached
  0.98 (so the share of vectors scanned stays fixed: linear in n); HNSW at the efSearch that
  reached 0.98 — then p50 is fitted by least squares, a + b·n for flat, flat16 and IVF, a + b·ln(n) for
  HNSW, and the fit is evaluated at 10M. Recall at 10M is not projected (HNSW's and IVF's usually
  fall as n grows at a fixed setting).

Writes benchmarks/results/ann-<vectors>.json (or `--out`) with the machine and the command line;
prints a table, or the JSON with `--json`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import (  # noqa: E402
    RESULTS,
    add_collection_args,
    collection_from_args,
    collection_report,
    collection_texts_in,
    dev_queries,
    latency_summary,
    load_tokenizer,
    machine_info,
    stamp,
    store_vectors,
    write_result,
)

K = 10
TARGET_RECALL = 0.98
PROJECT_TO = 10_000_000
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
EF_SEARCHES = (16, 32, 64, 128, 256, 512)


def inner(index):
    """The FAISS index inside the project's IDMap2 wrapper (IVF is not wrapped)."""
    import faiss

    return faiss.downcast_index(index.index) if hasattr(index, "id_map") else faiss.downcast_index(index)


def kind_of(index) -> str:
    import faiss

    core = inner(index)
    if isinstance(core, faiss.IndexScalarQuantizer):
        return "flat16"
    return "ivf" if isinstance(core, faiss.IndexIVF) else "hnsw" if isinstance(core, faiss.IndexHNSW) else "flat"


def build(kind: str, ids: np.ndarray, vectors: np.ndarray) -> tuple[object, float]:
    from storage import faiss_files as vx

    t = time.perf_counter()
    index = vx.build_index(kind, ids, vectors, vectors.shape[1])
    return index, time.perf_counter() - t


def search_all(index, queries: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """Ids of the top K per query, single-query latency summary, batched ms per query."""
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], K)
        times.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    _, ids = index.search(queries, K)
    batch_ms = (time.perf_counter() - t) * 1000
    return ids, latency_summary(times, 4), {"total_ms": round(batch_ms, 2), "per_query_ms": round(batch_ms / len(queries), 4)}


def recall_at_k(truth: np.ndarray, found: np.ndarray) -> float:
    return round(float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth.tolist(), found.tolist())])), 4)


def set_param(index, value: int) -> None:
    core = inner(index)
    if kind_of(index) == "ivf":
        core.nprobe = value
    else:
        core.hnsw.efSearch = value


def measure(kind: str, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray | None) -> dict:
    """One index type at full size: build, bytes, and its search settings swept."""
    import faiss

    index, build_s = build(kind, ids, vectors)
    out = {"built_as": kind_of(index), "build_s": round(build_s, 3), "bytes": len(faiss.serialize_index(index))}
    out["bytes_per_vector"] = round(out["bytes"] / len(ids), 1)
    core = inner(index)
    if out["built_as"] in ("flat", "flat16"):
        found, single, batch = search_all(index, queries)
        out["settings"] = [{"recall@10": recall_at_k(truth, found) if truth is not None else 1.0,
                            "single": single, "batch": batch}]
        return out | {"index": index}
    if out["built_as"] == "ivf":
        out |= {"nlist": core.nlist, "param": "nprobe", "project_default": core.nprobe,
                "quantizer_bytes": core.nlist * core.d * 4}
        values = sorted({v for v in NPROBES if v <= core.nlist} | {core.nprobe})
    else:
        out |= {"M": core.hnsw.nb_neighbors(1), "efConstruction": core.hnsw.efConstruction, "param": "efSearch",
                "project_default": core.hnsw.efSearch}
        values = sorted(set(EF_SEARCHES) | {core.hnsw.efSearch})
    out["settings"] = []
    for v in values:
        set_param(index, v)
        found, single, batch = search_all(index, queries)
        out["settings"].append({out["param"]: v, "recall@10": recall_at_k(truth, found), "single": single, "batch": batch})
    set_param(index, out["project_default"])
    reached = [s for s in out["settings"] if s["recall@10"] >= TARGET_RECALL]
    out["first_reaching_0.98"] = reached[0] if reached else None
    out["at_project_default"] = next(s for s in out["settings"] if s[out["param"]] == out["project_default"])
    return out | {"index": index}


def scaling(kinds: dict, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, fractions: list[float], seed: int) -> dict:
    """p50 single-query latency of each index type on subsets, at a fixed setting, and fits to 10M."""
    import faiss

    order = np.random.default_rng(seed).permutation(len(ids))
    points: dict[str, list[dict]] = {k: [] for k in kinds}
    for frac in sorted(fractions):
        n = max(1, round(frac * len(ids)))
        sub_ids, sub_vecs = ids[order[:n]], np.ascontiguousarray(vectors[order[:n]])
        exact = faiss.IndexFlatIP(sub_vecs.shape[1])
        exact.add(sub_vecs)
        truth = sub_ids[exact.search(queries, K)[1]]
        for kind, full in kinds.items():
            index = full["index"] if n == len(ids) else build(kind, sub_ids, sub_vecs)[0]
            built = kind_of(index)
            if built != kind:  # the project's IVF falls back to flat on small collections: no point
                continue
            setting = None
            if kind == "ivf":
                fraction = full["fixed_setting"] / full["nlist"]
                setting = max(1, round(fraction * inner(index).nlist))
                set_param(index, setting)
            elif kind == "hnsw":
                setting = full["fixed_setting"]
                set_param(index, setting)
            found, single, _ = search_all(index, queries)
            points[kind].append({"n": n, "setting": setting, "p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"],
                                 "recall@10": recall_at_k(truth, found)})
    fits = {}
    for kind, pts in points.items():
        model = "log" if kind == "hnsw" else "linear"
        x = np.array([p["n"] for p in pts], float)
        fit = {"model": "p50 = a + b*ln(n)" if model == "log" else "p50 = a + b*n", "points": pts}
        if len(pts) >= 2:
            b, a = np.polyfit(np.log(x) if model == "log" else x, [p["p50_ms"] for p in pts], 1)
            at = math.log(PROJECT_TO) if model == "log" else PROJECT_TO
            fit |= {"a": float(a), "b": float(b), "p50_ms_at_10M": round(float(a + b * at), 2)}
            if b <= 0:
                fit["warning"] = "latency did not grow with n: timings too noisy (or sizes too close) to extrapolate"
        else:
            fit["p50_ms_at_10M"] = None  # fewer than two sizes where the project builds this type
        fits[kind] = fit
    return fits


def memory_projection(kinds: dict, n: int, sqlite_bytes_per_chunk: float | None) -> dict:
    out = {}
    for kind, r in kinds.items():
        if r["built_as"] != kind:
            continue
        if kind == "ivf":
            per_vector = (r["bytes"] - r["quantizer_bytes"]) / n
            quantizer = int(4 * math.sqrt(PROJECT_TO)) * (r["quantizer_bytes"] // r["nlist"])
            total = per_vector * PROJECT_TO + quantizer
        else:
            per_vector, total = r["bytes"] / n, r["bytes"] / n * PROJECT_TO
        out[kind] = {"bytes_per_vector": round(per_vector, 1), "gb_at_10M": round(total / 1e9, 2)}
    if sqlite_bytes_per_chunk:
        out["sqlite"] = {"bytes_per_chunk": round(sqlite_bytes_per_chunk, 1),
                         "gb_at_10M": round(sqlite_bytes_per_chunk * PROJECT_TO / 1e9, 2)}
    return out


# -- report ----------------------------------------------------------------------------------------


def table(r: dict) -> str:
    lines = [f"{r['vectors']} vectors (dim {r['dim']}), {r['queries']} queries, recall@10 against exact flat search; "
             f"{r['machine']['cpu_count']} CPUs, FAISS threads {r['machine']['faiss_threads']}",
             f"{'index':<8}{'setting':<16}{'recall@10':>10}{'p50 ms':>9}{'p99 ms':>9}{'batch ms/q':>12}{'build s':>9}{'MB':>9}"]
    for kind, res in r["indexes"].items():
        for i, s in enumerate(res["settings"]):
            param = res.get("param")
            label = f"{param}={s[param]}" if param else {"flat": "exact", "flat16": "fp16 scan"}.get(kind, "(as flat)")
            if param and s[param] == res["project_default"]:
                label += " *"
            first = i == 0
            lines.append(f"{kind if first else '':<8}{label:<16}{s['recall@10']:>10.4f}{s['single']['p50_ms']:>9.3f}"
                         f"{s['single']['p99_ms']:>9.3f}{s['batch']['per_query_ms']:>12.4f}"
                         f"{res['build_s'] if first else '':>9}{round(res['bytes'] / 2**20, 1) if first else '':>9}")
    lines.append("* = the project's default setting (storage/faiss_files.py)")
    if r["indexes"]["ivf"]["built_as"] != "ivf":
        lines.append("ivf: too few vectors to train (the project needs 39 per list, nlist = 4*sqrt(n)): it builds flat")
    for kind, res in r["indexes"].items():
        if res.get("param"):
            hit = res["first_reaching_0.98"]
            lines.append(f"{kind}: first reaching recall@10 >= {TARGET_RECALL}: " + (
                f"{res['param']}={hit[res['param']]} (recall {hit['recall@10']}, p50 {hit['single']['p50_ms']} ms)"
                if hit else "none of the settings tried"))
    p = r["projection_10M"]
    lines.append("projection to 10M vectors (EXTRAPOLATED, not measured):")
    for kind, m in p["memory"].items():
        lat = p["latency"].get(kind, {})
        lat_s = f", p50 {lat['p50_ms_at_10M']} ms ({lat['model']})" if lat.get("p50_ms_at_10M") is not None else ""
        lines.append(f"  {kind:<7}{m['gb_at_10M']:>8.2f} GB{lat_s}" + (" — WARNING: " + lat["warning"] if lat.get("warning") else ""))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_collection_args(ap)
    ap.add_argument("--queries", type=int, default=1000, help="dev queries (at least 500 for a stable recall)")
    ap.add_argument("--scaling", default="0.25,0.5,1", help="collection fractions for the latency fits")
    ap.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/ann-<vectors>.json)")
    ap.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = ap.parse_args()

    from models.loading import load_encoder

    db, summary, model = collection_from_args(args)
    collection = collection_report(db, summary)
    ids, vectors = store_vectors(db)
    texts = [q["text"] for q in dev_queries(args.queries, args.seed, load_tokenizer(model), collection_texts_in(db))]
    t = time.perf_counter()
    queries = np.ascontiguousarray(load_encoder(str(model), runtime="torch").encode(texts, "query"), np.float32)
    encode_s = time.perf_counter() - t

    kinds = {"flat": measure("flat", ids, vectors, queries, None)}
    truth = kinds["flat"]["index"].search(queries, K)[1]  # chunk ids of the exact top 10
    for kind in ("flat16", "ivf", "hnsw"):
        kinds[kind] = measure(kind, ids, vectors, queries, truth)
    for kind, r in kinds.items():  # the fixed setting the latency fits use
        if r.get("param"):
            hit = r["first_reaching_0.98"] or r["settings"][-1]
            r["fixed_setting"] = hit[r["param"]]
    fits = scaling(kinds, ids, vectors, queries, [float(f) for f in args.scaling.split(",")], args.seed)
    sqlite_bytes = (Path(db) / "index.sqlite").stat().st_size / len(ids) if (Path(db) / "index.sqlite").exists() else None
    for r in kinds.values():
        del r["index"]
    report = {
        "vectors": len(ids), "dim": int(vectors.shape[1]), "queries": len(texts), "query_encode_s": round(encode_s, 2),
        "collection": collection, "indexes": kinds,
        "projection_10M": {
            "method": ("EXTRAPOLATION from at most the measured collection size. memory: serialized index bytes per "
                       "vector at full size x 10M (IVF: coarse quantizer at nlist = 4*sqrt(10M) added apart); sqlite: "
                       "index.sqlite bytes per chunk x 10M. latency: single-query p50 measured on subsets at a fixed "
                       "setting (IVF: fixed nprobe/nlist fraction; HNSW: fixed efSearch, both the first reaching "
                       "recall@10 0.98 at full size), least-squares fit a + b*n (flat, flat16, IVF) or a + b*ln(n) (HNSW), "
                       "evaluated at n = 10M; recall at 10M is not projected"),
            "memory": memory_projection(kinds, len(ids), sqlite_bytes), "latency": fits},
        "machine": machine_info(), **stamp(),
    }
    out = args.out or RESULTS / f"ann-{len(ids)}.json"
    write_result(report, out, args.json, table(report))


if __name__ == "__main__":
    main()
