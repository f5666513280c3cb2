"""Query latency over HTTP under a bounded loopback load, against the same queries in-process.

    python benchmarks/http_latency.py [--size 100000] [--clients 8] [--requests 2000] [--model base] [--json]
    python benchmarks/http_latency.py --db DIR          # an existing index instead of the collection

The collection: `--size` short texts from the shared training pairs, one chunk each (4-48 tokens,
16 on average, English and Chinese half each), indexed with the real `xlsearch index` (flat FAISS,
the default) and cached in `$XLSEARCH_HOME/bench/collection-<size>-<seed>-<model>/` (see
benchmarks/common.py; a rerun reuses it, an interrupted build resumes; the first build of 100k
takes roughly 20 minutes on a 2-core CPU). The default "base" model is multilingual-e5-small as
xlsearch converts it.

Method:

1. `xlsearch serve --db DIR --port P` runs as a subprocess on a free loopback port; the script
   waits for `/healthz` (the server loads the model and warms it up before it listens).
2. `--clients` threads, each with one keep-alive `http.client` connection, share a list of
   `--requests` distinct queries and issue `GET /api/search?q=...&k=10` (the API's defaults:
   hybrid mode, balanced) until the list is used up — a closed loop, so at most `--clients`
   requests are in flight. Queries are dev sentences (2-64 tokens, half English, half Chinese,
   seeded, none a text of the collection), all different, so the server's query-vector LRU cache
   (`Encoder.QUERY_CACHE_SIZE`) never serves them: every request embeds its query. `--warmup`
   other queries go first, untimed. Latency is per request, from sending it to reading the whole
   response body, on the client; throughput = requests / wall time of the pass. Any status but
   200 (or a failed connection) counts as an error and is reported.
3. A second pass, labelled "cached": a set of min(requests, cache size / 2) of those queries is
   sent once (untimed, so the cache holds them all), then `--requests` requests cycle through
   it with the same clients. Only the query embedding is skipped; FAISS, SQLite, ranking and
   snippets still run.
4. The server is stopped, and the same distinct queries run in this process, one at a time:
   `search.searcher.search(store, encoder, q, k=10)` (what the API calls, without HTTP,
   threads or the lock), then a plain baseline: `SentenceTransformer.encode([q])` with the
   model's query prompt + `faiss.IndexFlatIP.search` over the index's own vectors (read from
   SQLite). Both warmed with the warm-up queries first.

The target (issue 6): p50 <= 30 ms and p99 <= 100 ms for the distinct queries at 8 clients.
In this closed loop the mean latency is clients / throughput (Little's law): with 8 clients, a
30 ms median needs roughly 270 requests/s from the server, under 4 ms of CPU per search. The
server answers concurrent searches in batches (`web.batching`: one model call and one FAISS pass
per batch); the sizes of the batches it ran in the distinct pass are reported from its /healthz.
Writes benchmarks/results/http-latency-<chunks>.json (or `--out`) with the machine, the command
line and every summary; prints a table, or the JSON with `--json`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

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

TARGET = {"p50_ms": 30.0, "p99_ms": 100.0}
HOST = "127.0.0.1"


# -- the server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(db: Path, log_file, timeout: float, precision: str = "auto") -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "cli", "-q", "serve", "--db", str(db), "--host", HOST, "--port", str(port), "--precision", precision]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"xlsearch serve exited with status {proc.returncode}; its output is in {log_file.name}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            if resp.status == 200:
                proc.healthz = json.loads(resp.read())  # model name (and precision, where it says)
                conn.close()
                return proc, port
        except OSError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"xlsearch serve did not answer /healthz within {timeout:.0f} s; its output is in {log_file.name}")


def stop_server(proc: subprocess.Popen) -> dict:
    """Stop it, and report its peak RSS (read from /proc just before)."""
    peak = None
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return {"peak_rss_mb": peak}


# -- load -----------------------------------------------------------------------------------------------


def healthz(port: int) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def batch_sizes_since(before: dict, after: dict) -> dict:
    """How many search batches of each size the server ran between two /healthz reads."""
    b, a = before.get("search_batches", {}), after.get("search_batches", {})
    return {size: a[size] - b.get(size, 0) for size in sorted(a, key=int) if a[size] - b.get(size, 0)}


def http_pass(port: int, queries: list[str], clients: int, k: int) -> dict:
    """Every query once, `clients` keep-alive connections at a time; latency per request in ms."""
    times: list[float] = [0.0] * len(queries)
    errors: list[str] = []
    hits: list[int] = []
    lock, state = threading.Lock(), {"next": 0, "connections": 0}

    def connect() -> http.client.HTTPConnection:
        with lock:
            state["connections"] += 1
        return http.client.HTTPConnection(HOST, port, timeout=120)

    def worker() -> None:
        conn = connect()
        while True:
            with lock:
                i, state["next"] = state["next"], state["next"] + 1
            if i >= len(queries):
                break
            t = time.perf_counter()
            try:
                conn.request("GET", "/api/search?" + urlencode({"q": queries[i], "k": k}))
                resp = conn.getresponse()
                body = resp.read()
                problem = None if resp.status == 200 else f"HTTP {resp.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = connect()
            times[i] = (time.perf_counter() - t) * 1000
            with lock:
                if problem:
                    errors.append(problem)
                else:
                    hits.append(len(json.loads(body)["hits"]))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"requests": len(queries), "clients": clients, "latency": latency_summary(times), "wall_s": round(wall, 2),
            "throughput_rps": round(len(queries) / wall, 2), "errors": len(errors), "error_examples": errors[:5],
            "connections": state["connections"], "mean_hits": round(sum(hits) / len(hits), 2) if hits else 0.0}


def timed(queries: list[str], run) -> dict:
    times = []
    for q in queries:
        t = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - t) * 1000)
    return latency_summary(times)


def in_process(db: Path, warmup: list[str], queries: list[str], k: int, precision: str = "auto") -> dict:
    from xlsearch import Index

    with Index(db, precision=precision) as index:
        run = lambda q: index.search(q, k=k)  # noqa: E731
        timed(warmup, run)
        return {**timed(queries, run), "precision": index.encoder.precision}


def baseline(db: Path, model: Path, warmup: list[str], queries: list[str], k: int) -> dict:
    import faiss
    from sentence_transformers import SentenceTransformer

    _, vectors = store_vectors(db)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    # the index's own model folder; a centered one needs xlsearch's module class (remote code)
    st = SentenceTransformer(str(model), trust_remote_code=True, local_files_only=True)
    prompt = (st.prompts or {}).get("query", "")

    def run(q: str) -> None:
        index.search(st.encode([q], prompt=prompt, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False), k)

    timed(warmup, run)
    return timed(queries, run)


# -- report ------------------------------------------------------------------------------------------


def table(r: dict) -> str:
    c = r["collection"]
    lines = [f"{c['chunks']} chunks ({c['chunks_by_lang']}, {c['mean_tokens']} tokens on average), model {c['model']}; "
             f"{r['machine']['cpu_count']} CPUs, torch threads {r['machine']['torch_threads']}",
             f"{'':34}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'req/s':>8}{'errors':>8}"]
    for label, key in (("HTTP, distinct queries", "http_distinct"), ("HTTP, cached (repeated) queries", "http_cached")):
        p = r[key]
        lat = p["latency"]
        lines.append(f"{label:<34}{lat['p50_ms']:>8.1f}{lat['p90_ms']:>8.1f}{lat['p99_ms']:>8.1f}{lat['max_ms']:>8.1f}"
                     f"{p['throughput_rps']:>8.1f}{p['errors']:>8}")
    for label, key in (("in-process search(), 1 thread", "in_process"), ("baseline ST + IndexFlatIP", "baseline")):
        lat = r[key]
        lines.append(f"{label:<34}{lat['p50_ms']:>8.1f}{lat['p90_ms']:>8.1f}{lat['p99_ms']:>8.1f}{lat['max_ms']:>8.1f}"
                     f"{1000 / lat['mean_ms'] if lat['mean_ms'] else 0:>8.1f}{'-':>8}")
    lines.append(f"(ms; {r['http_distinct']['clients']} clients, {r['http_distinct']['requests']} requests per HTTP pass; "
                 f"in-process and baseline: one query at a time, req/s = 1/mean)")
    lines.append("ratios p50 / p99: " + ", ".join(f"{k} {v['p50']:.2f} / {v['p99']:.2f}" for k, v in r["ratios"].items()))
    t = r["target"]
    lines.append(f"target p50 <= {t['p50_ms']:.0f} ms, p99 <= {t['p99_ms']:.0f} ms (distinct queries, HTTP): "
                 f"{'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_collection_args(ap)
    ap.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    ap.add_argument("--requests", type=int, default=2000, help="requests per HTTP pass (distinct queries)")
    ap.add_argument("--warmup", type=int, default=16, help="untimed requests first (other queries)")
    ap.add_argument("-k", type=int, default=10, help="hits per query")
    ap.add_argument("--precision", default="auto", help="the server's and the in-process search's --precision (int8: ONNX Runtime's int8 queries)")
    ap.add_argument("--startup-timeout", type=float, default=300, help="seconds to wait for /healthz")
    ap.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/http-latency-<chunks>.json)")
    ap.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = ap.parse_args()

    from models.encoder import Encoder

    db, summary, model = collection_from_args(args)
    collection = collection_report(db, summary)
    picked = dev_queries(args.requests + args.warmup, args.seed, load_tokenizer(model),
                         collection_texts_in(db))
    warmup, queries = [q["text"] for q in picked[: args.warmup]], [q["text"] for q in picked[args.warmup :]]
    cached = queries[: min(len(queries), Encoder.QUERY_CACHE_SIZE // 2)]

    with tempfile.NamedTemporaryFile("w+", prefix="xlsearch-serve-", suffix=".log", delete=False) as log_file:
        started = time.perf_counter()
        proc, port = start_server(db, log_file, args.startup_timeout, args.precision)
        startup_s = round(time.perf_counter() - started, 2)
        try:
            http_pass(port, warmup, args.clients, args.k)
            before = healthz(port)
            distinct = http_pass(port, queries, args.clients, args.k)
            distinct["server_batch_sizes"] = batch_sizes_since(before, healthz(port))
            http_pass(port, cached, 1, args.k)  # fill the cache with exactly this set
            repeated = http_pass(port, [cached[i % len(cached)] for i in range(args.requests)], args.clients, args.k)
        finally:
            server = {"startup_s": startup_s, "healthz": proc.healthz, **stop_server(proc)}
    os.unlink(log_file.name)
    repeated["distinct_queries"] = len(cached)
    local = in_process(db, warmup, queries, args.k, args.precision)
    plain = baseline(db, model, warmup, queries, args.k)

    def ratio(a: dict, b: dict) -> dict:
        return {p: round(a[f"{p}_ms"] / b[f"{p}_ms"], 2) if b[f"{p}_ms"] else None for p in ("p50", "p99")}

    lat = distinct["latency"]
    report = {
        "collection": collection, "queries": {"distinct": len(queries), "warmup": len(warmup), "k": args.k,
                                              "english": sum(q["lang"] == "en" for q in picked[args.warmup :])},
        "http_distinct": distinct, "http_cached": repeated, "in_process": local, "baseline": plain, "server": server,
        "ratios": {"http/in_process": ratio(lat, local), "in_process/baseline": ratio(local, plain),
                   "http/baseline": ratio(lat, plain), "http_cached/http_distinct": ratio(repeated["latency"], lat)},
        "target": {**TARGET, "met": lat["p50_ms"] <= TARGET["p50_ms"] and lat["p99_ms"] <= TARGET["p99_ms"]
                   and distinct["errors"] == 0},
        "machine": machine_info(), **stamp(),
    }
    out = args.out or RESULTS / f"http-latency-{collection['chunks']}.json"
    write_result(report, out, args.json, table(report))


if __name__ == "__main__":
    main()
