"""Indexing and query cost of the project against a plain baseline, on the same texts, in one run.

    python benchmarks/indexing.py --corpus dev [--limit N] [--queries 200] [--model base] [--precision int8] [--json]
    python benchmarks/indexing.py --corpus synthetic --size 20000 [--seed 0]
    python benchmarks/indexing.py --corpus synthetic --megabytes 50 --baseline-limit 8000
    python benchmarks/indexing.py --corpus demo

Both sides use the same local model folder (`--model`, default "base": multilingual-e5-small as
converted by xlsearch, resolved with `resolve_model_path`) on the same device (torch's default),
unless `--project-model` gives the project another one (e.g. `fast`, the 6-layer student): the
baseline then stays plain sentence-transformers on `--model`, the question being what a user gains
over that, and the result file gets the project model's name as a suffix. `--runtime` is the
project's, as xlsearch --runtime takes it (auto indexes on PyTorch).

- **baseline**: `SentenceTransformer(folder).encode(texts, prompt="passage: ", batch_size=32,
  normalize_embeddings=True)` in fp32, vectors into a `faiss.IndexFlatIP` saved with
  `faiss.write_index`; its texts are also saved as JSONL (ids and texts) so that, like the project,
  it can show what it found. Queries: `encode([q], prompt="query: ")` then `index.search`.
- **project**: the texts as a JSONL file ("id", "text"), indexed with `xlsearch index FILE --db DIR
  --model FOLDER --precision P --id-field id --json` (click's CliRunner); queries through
  `search.searcher.search` in-process, in its default mode (hybrid, balanced) and plain dense
  (`mode="dense", balance=False`), with an encoder at the same precision. `--precision`
  (auto/fp32/int8, default auto as in the CLI) applies to the project only: the baseline stays
  plain fp32. The result records the precision asked for and the one the project ran at; a run
  at int8 writes its JSON with an `-int8` suffix, so it does not overwrite the fp32 result.

Corpora: `dev` = both sides of every dev pair (~15k short texts); `synthetic` = `--size` passages of
100-200 tokens, each made of random dev/train sentences of one language (seeded; English and
Chinese alternate), so each is one chunk for the project; `--megabytes MB` instead of `--size`
makes as many as come to MB megabytes of UTF-8 text (the count estimated from a 2,000-passage
draw with the same seed; the size reached is reported); `demo` = the project indexes demo/corpus
(files), and the baseline embeds exactly the chunk texts from the project's database (`--limit`
does not apply). `--limit N` keeps the first N texts.

`--baseline-limit N`: the baseline embeds only the first N texts (a 50 MB corpus takes the plain
baseline over an hour on 2 cores). Its texts/s and tokens/s are then over those N texts (their own
token count, which the result records), the throughput ratio compares those rates, and recall@10
is not reported (the baseline's index holds a part of the collection).

Each side runs in its own subprocess (this script with `--child`), so its peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`) is its own. Measured per side: wall time to index (model
load + embed + write, Python imports excluded; for the project also its model probe, jieba's
dictionary load, chunking and SQLite), texts/s and tokens/s over that time, peak RSS after
indexing and after querying, size on disk (baseline: the .faiss file, and .faiss + texts JSONL;
project: the whole --db folder), and query latency p50/p99 over `--queries` dev queries (half
English, half Chinese, seeded sample of dev pairs; `--warmup` queries run first and are not timed).
Tokens are counted once with the model's tokenizer ("passage: " + text, with special tokens) and
the same count serves both sides. Recall@10: the share of the baseline's top-10 documents that the
project's top-10 holds, per query, averaged (the project returns one hit per document; on a corpus
whose documents have several chunks the baseline's hits are grouped the same way).

Writes benchmarks/results/indexing-<corpus>-<texts>.json (or `--out`) with machine info and the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.choices import RUNTIMES  # noqa: E402
from core.config import PRECISIONS  # noqa: E402
from core.pairs import default_dev_dir, default_train_dir, read_pairs  # noqa: E402

K = 10


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else 0.0


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def timed_queries(queries: list[str], warmup: int, run) -> tuple[list[list[str]], dict]:
    """run(query) -> ranked document labels; returns the rankings and latency in ms."""
    for q in queries[:warmup]:
        run(q)
    ranked, times = [], []
    for q in queries:
        t = time.perf_counter()
        ranked.append(run(q))
        times.append((time.perf_counter() - t) * 1000)
    return ranked, {"p50_ms": round(percentile(times, 50), 2), "p99_ms": round(percentile(times, 99), 2)}


# -- the two sides, each run in its own process --------------------------------------------------


def child_baseline(work: Path, model: str, warmup: int) -> dict:
    import faiss
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # as the project's Encoder does
    rows, queries = read_jsonl(work / "texts.jsonl"), read_jsonl(work / "queries.jsonl")
    out_dir = work / "baseline"
    out_dir.mkdir()
    t0 = time.perf_counter()
    st = SentenceTransformer(model)
    t_load = time.perf_counter()
    vecs = st.encode([r["text"] for r in rows], prompt="passage: ", batch_size=32, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
    t_enc = time.perf_counter()
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(np.ascontiguousarray(vecs, dtype=np.float32))
    faiss.write_index(index, str(out_dir / "vectors.faiss"))
    write_jsonl(out_dir / "texts.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows])
    index_s = time.perf_counter() - t0
    rss_index = peak_rss_mb()
    groups = [r["group"] for r in rows]
    fetch = K if len(set(groups)) == len(groups) else K * 10  # group chunks per document, like the project

    def run(q: str) -> list[str]:
        qv = st.encode([q], prompt="query: ", normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        _, ids = index.search(qv, min(fetch, index.ntotal))
        seen: list[str] = []
        for i in ids[0]:
            if i >= 0 and groups[i] not in seen:
                seen.append(groups[i])
        return seen[:K]

    ranked, latency = timed_queries([q["text"] for q in queries], warmup, run)
    faiss_bytes = (out_dir / "vectors.faiss").stat().st_size
    return {
        "index_s": round(index_s, 3), "model_load_s": round(t_load - t0, 3), "encode_s": round(t_enc - t_load, 3),
        "chunks": len(rows), "peak_rss_mb_index": round(rss_index, 1), "peak_rss_mb_total": round(peak_rss_mb(), 1),
        "disk_bytes": faiss_bytes, "disk_bytes_with_texts": faiss_bytes + (out_dir / "texts.jsonl").stat().st_size,
        "queries": {"plain": {"latency": latency, "ranked": ranked}}, **torch_info(),
    }


def child_project(work: Path, model: str, warmup: int, source: str, precision: str, runtime: str = "auto") -> dict:
    # Import what the command imports lazily, so that both sides' times exclude Python imports.
    import faiss  # noqa: F401
    import sentence_transformers  # noqa: F401
    from click.testing import CliRunner

    from cli import cli
    from xlsearch import Index

    queries = read_jsonl(work / "queries.jsonl")
    db = work / "project-db"
    args = ["-q", "index", source, "--db", str(db), "--model", model, "--precision", precision, "--runtime", runtime, "--json"]
    if source.endswith(".jsonl"):
        args += ["--id-field", "id"]
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    index_s = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"xlsearch index failed ({result.exit_code}): {result.output}\n{result.exception!r}")
    summary = json.loads(result.output)
    rss_index = peak_rss_mb()
    out = {
        "index_s": round(index_s, 3), "run_index_s": summary["seconds"], "chunks": summary["chunks"],
        "documents": summary["documents"], "skipped": len(summary["skipped"]),
        "peak_rss_mb_index": round(rss_index, 1), "disk_bytes": sum(p.stat().st_size for p in db.rglob("*") if p.is_file()),
        "precision": summary["precision"], "queries": {},
    }
    with Index(db, model, precision=precision, runtime=runtime) as index:
        index.encoder.QUERY_CACHE_SIZE = 0  # cold queries: each pays for its encoding, as the baseline's do
        for name, options in {"default": {}, "dense": {"mode": "dense", "balance": False}}.items():
            run = lambda q: [h.key or h.path for h in index.search(q, k=K, **options)]  # noqa: E731
            ranked, latency = timed_queries([q["text"] for q in queries], warmup, run)
            out["queries"][name] = {"latency": latency, "ranked": ranked}
    out["peak_rss_mb_total"] = round(peak_rss_mb(), 1)
    return {**out, **torch_info()}


def torch_info() -> dict:
    import torch

    return {"torch_threads": torch.get_num_threads(), "device": "cuda" if torch.cuda.is_available() else "cpu"}


def run_child(side: str, work: Path, args, source: str = "") -> dict:
    model = args.project_model_path if side == "project" else args.model_path
    cmd = [sys.executable, __file__, "--child", side, "--work", str(work), "--model", model,
           "--warmup", str(args.warmup), "--source", source, "--precision", args.precision, "--runtime", args.runtime]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    result = json.loads((work / f"{side}.json").read_text())
    result["process_s"] = round(time.perf_counter() - t, 3)  # with interpreter start and imports
    return result


# -- texts and queries ----------------------------------------------------------------------------


def dev_texts(data: Path) -> list[dict]:
    rows = []
    for tsv in sorted(data.glob("*.tsv")):
        for i, (en, zh) in enumerate(read_pairs(tsv)):
            rows += [{"id": f"{tsv.stem}-{i}-en", "text": en}, {"id": f"{tsv.stem}-{i}-zh", "text": zh}]
    return rows


def synthetic_texts(n: int, seed: int, tokenizer, dev: Path, train: Path) -> list[dict]:
    """n single-language passages of 100-200 tokens glued from random sentences of ≤ 50 tokens."""
    rng = random.Random(seed)
    pairs = [p for d in (dev, train) for tsv in sorted(d.glob("*.tsv")) for p in read_pairs(tsv)]
    pools = {}
    for side, lang in enumerate(("en", "zh")):
        sample = [p[side] for p in rng.sample(pairs, min(len(pairs), n * 12 + 1000))]
        counts = [len(ids) for ids in tokenizer(sample, add_special_tokens=False)["input_ids"]]
        pools[lang] = [(s, c) for s, c in zip(sample, counts) if 3 <= c <= 50]
    rows = []
    for j in range(n):
        lang = ("en", "zh")[j % 2]
        target, parts, total = rng.randint(100, 200), [], 0
        while total < target:
            s, c = rng.choice(pools[lang])
            parts.append(s)
            total += c
        rows.append({"id": f"syn-{j}", "text": (" " if lang == "en" else "").join(parts)})
    return rows


def demo_texts(db: Path) -> list[dict]:
    with sqlite3.connect(db / "index.sqlite") as conn:
        rows = conn.execute("""select c.id, substr(d.text, c.start + 1, c."end" - c.start), d.key, f.path
                               from chunks c join documents d on d.id = c.doc_id join files f on f.id = d.file_id
                               order by c.id""").fetchall()
    return [{"id": str(cid), "text": text, "group": key or path} for cid, text, key, path in rows]


def dev_queries(data: Path, n: int, seed: int) -> list[dict]:
    pairs = [p for tsv in sorted(data.glob("*.tsv")) for p in read_pairs(tsv)]
    picked = random.Random(seed + 1).sample(pairs, min(n, len(pairs)))
    return [{"text": p[i % 2], "lang": ("en", "zh")[i % 2]} for i, p in enumerate(picked)]


# -- report -----------------------------------------------------------------------------------------


def recall(base: list[list[str]], proj: list[list[str]]) -> float:
    shares = [len(set(b) & set(p)) / len(b) for b, p in zip(base, proj) if b]
    return round(sum(shares) / len(shares), 4) if shares else 0.0


def table(r: dict) -> str:
    b, p = r["baseline"], r["project"]
    lines = [f"{r['corpus']}: {r['texts']} texts, {r['tokens']} tokens, {r['queries']} queries; model {r['model']} "
             f"(project {r['precision']['project']}, baseline {r['precision']['baseline']}); "
             f"{r['machine']['cpu_count']} CPUs, torch threads {b['torch_threads']}, device {b['device']}",
             f"{'':28}{'baseline':>14}{'project':>14}{'project/base':>14}"]

    def row(label: str, bv: float, pv: float, fmt: str = "{:.1f}") -> None:
        ratio = f"{pv / bv:.2f}" if bv else "-"
        lines.append(f"{label:<28}{fmt.format(bv):>14}{fmt.format(pv):>14}{ratio:>14}")

    row("index wall s", b["index_s"], p["index_s"], "{:.2f}")
    row("texts/s", b["texts_per_s"], p["texts_per_s"])
    row("tokens/s", b["tokens_per_s"], p["tokens_per_s"], "{:.0f}")
    row("peak RSS MB (index)", b["peak_rss_mb_index"], p["peak_rss_mb_index"])
    row("peak RSS MB (+queries)", b["peak_rss_mb_total"], p["peak_rss_mb_total"])
    row("disk MB (base: .faiss)", b["disk_bytes"] / 2**20, p["disk_bytes"] / 2**20, "{:.2f}")
    row("disk MB (base: +texts)", b["disk_bytes_with_texts"] / 2**20, p["disk_bytes"] / 2**20, "{:.2f}")
    bl = b["queries"]["plain"]["latency"]
    for mode, q in p["queries"].items():
        row(f"query p50 ms ({mode})", bl["p50_ms"], q["latency"]["p50_ms"], "{:.2f}")
        row(f"query p99 ms ({mode})", bl["p99_ms"], q["latency"]["p99_ms"], "{:.2f}")
    lines.append(f"details: baseline model load {b['model_load_s']} s + encode {b['encode_s']} s; project run_index "
                 f"{p['run_index_s']} s, {p['chunks']} chunks in {p['documents']} documents; processes "
                 f"{b['process_s']} s / {p['process_s']} s with imports")
    if r["recall@10"] is not None:
        lines.append("recall@10 of the baseline's top-10: " + ", ".join(f"{m} {v:.3f}" for m, v in r["recall@10"].items()))
    else:
        lines.append(f"the baseline embedded the first {b['texts']} texts ({b['tokens']} tokens): rates compared "
                     "(wall time and disk: different amounts), no recall")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=("dev", "synthetic", "demo"), default="dev")
    ap.add_argument("--size", type=int, default=10000, help="passages for --corpus synthetic")
    ap.add_argument("--megabytes", type=float, default=None, help="--corpus synthetic: passages enough for this many MB (not --size)")
    ap.add_argument("--baseline-limit", type=int, default=None, help="the baseline embeds only the first N texts (see above)")
    ap.add_argument("--limit", type=int, default=None, help="keep the first N texts (dev, synthetic)")
    ap.add_argument("--demo-path", type=Path, default=ROOT / "demo" / "corpus", help="folder indexed for --corpus demo")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--model", default="base", help="name or folder, as xlsearch --model takes it")
    ap.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                    help="the project's encoder precision, as xlsearch --precision takes it (the baseline stays fp32)")
    ap.add_argument("--project-model", default=None, help="the project's model, if not --model (the baseline keeps --model)")
    ap.add_argument("--runtime", choices=RUNTIMES, default="auto", help="the project's runtime, as xlsearch --runtime takes it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="the result file (default: benchmarks/results/indexing-<corpus>-<texts>….json)")
    ap.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    ap.add_argument("--child", choices=("baseline", "project"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--source", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side = child_baseline(args.work, args.model, args.warmup) if args.child == "baseline" else \
            child_project(args.work, args.model, args.warmup, args.source, args.precision, args.runtime)
        (args.work / f"{args.child}.json").write_text(json.dumps(side, ensure_ascii=False))
        return

    from transformers import AutoTokenizer

    from models.loading import resolve_model_path

    args.model_path = str(resolve_model_path(args.model))
    args.project_model_path = str(resolve_model_path(args.project_model)) if args.project_model else args.model_path
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    with tempfile.TemporaryDirectory(prefix="xlsearch-bench-") as tmp:
        work = Path(tmp)
        write_jsonl(work / "queries.jsonl", dev_queries(default_dev_dir(), args.queries, args.seed))
        if args.corpus == "demo":
            project = run_child("project", work, args, str(args.demo_path.resolve()))
            rows = demo_texts(work / "project-db")
        else:
            if args.corpus == "synthetic" and args.megabytes:
                pilot = synthetic_texts(2000, args.seed, tokenizer, default_dev_dir(), default_train_dir())
                args.size = round(args.megabytes * 1e6 / (sum(len(r["text"].encode()) for r in pilot) / len(pilot)))
            rows = dev_texts(default_dev_dir()) if args.corpus == "dev" else \
                synthetic_texts(args.size, args.seed, tokenizer, default_dev_dir(), default_train_dir())
            rows = rows[: args.limit] if args.limit else rows
            for r in rows:
                r["group"] = r["id"]
        base_rows = rows[: args.baseline_limit] if args.baseline_limit else rows
        write_jsonl(work / "texts.jsonl", base_rows)
        if args.corpus != "demo":
            write_jsonl(work / "docs.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows])
            project = run_child("project", work, args, str(work / "docs.jsonl"))
        baseline = run_child("baseline", work, args)
    counts = [len(ids) for ids in tokenizer(["passage: " + r["text"] for r in rows])["input_ids"]]
    tokens = sum(counts)
    for side, n in ((baseline, len(base_rows)), (project, len(rows))):
        side["texts_per_s"] = round(n / side["index_s"], 2)
        side["tokens_per_s"] = round(sum(counts[:n]) / side["index_s"], 1)
    baseline["texts"], baseline["tokens"] = len(base_rows), sum(counts[: len(base_rows)])
    base_ranked = baseline["queries"]["plain"].pop("ranked")
    recall_at_10 = {mode: recall(base_ranked, q.pop("ranked")) for mode, q in project["queries"].items()}
    subset = len(base_rows) < len(rows)
    import faiss
    import torch

    report = {
        "corpus": args.corpus, "texts": len(rows), "tokens": tokens, "queries": args.queries, "model": args.model_path,
        "project_model": args.project_model_path, "runtime": args.runtime,
        "throughput_ratio": round(project["tokens_per_s"] / baseline["tokens_per_s"], 2),
        "precision": {"requested": args.precision, "project": project["precision"], "baseline": "fp32"},
        "megabytes": round(sum(len(r["text"].encode()) for r in rows) / 1e6, 2),
        "recall@10": None if subset else recall_at_10,
        "baseline": baseline, "project": project,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "faiss": faiss.__version__, "torch_threads": baseline["torch_threads"],
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    suffix = "" if project["precision"] == "fp32" else f"-{project['precision']}"
    suffix += f"-{args.project_model}" if args.project_model else ""
    path = args.out or ROOT / "benchmarks" / "results" / f"indexing-{args.corpus}-{len(rows)}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else table(report) + f"\nwritten: {path}")


if __name__ == "__main__":
    main()
