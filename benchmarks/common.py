"""What the benchmarks share: percentiles, machine info, result files, and the cached collection.

The collection (`ensure_collection`) is what `http_latency.py` and `ann.py` measure: `size` short
texts, each one chunk, from the shared training pairs (`core.pairs.default_train_dir()`), indexed
with the real `xlsearch index` (JSONL, `--id-field id`) into
`$XLSEARCH_HOME/bench/collection-<size>-<seed>-<model folder name>/`, so a second run reuses it.

- Texts: the pairs of every train TSV, shuffled with `seed`; a pair is kept when both sides have
  4-48 content tokens (the model's tokenizer, no prompt or special tokens) and neither text was
  already taken; both sides go in (so English and Chinese are half each, and every text has its
  translation in the collection). On the shared data, 100k texts average 16 content tokens
  (median 12, p90 33), far below the 256-token chunk budget, so each text is one chunk; with the
  prompt and special tokens that is 2.0M tokens to embed, about 18 minutes at the 1,850 tokens/s
  benchmarks/indexing.py measured on a 2-core CPU (picking the texts takes under a minute more).
  Only when the train pairs run out are dev pairs used.
- Written as JSONL files of 1,000 rows (`texts/part-NNN.jsonl`), so `xlsearch index` commits as it
  goes and an interrupted build resumes where it stopped; `done.json` (the index summary) marks a
  finished build.

Queries (`dev_queries`) are dev sentences (`default_dev_dir()`) of 2-64 content tokens, half English
and half Chinese, seeded, distinct, and never a text of the collection (checked against the index's
documents, so `--db` collections are covered too).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEXT_TOKENS = (4, 48)  # content tokens of a collection text
QUERY_TOKENS = (2, 64)
ROWS_PER_FILE = 1000


# -- numbers and reports ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else 0.0


def latency_summary(ms: list[float], digits: int = 2) -> dict:
    """n, p50/p90/p99, max and mean of latencies in milliseconds."""
    return {"n": len(ms), **{f"p{p}_ms": round(percentile(ms, p), digits) for p in (50, 90, 99)},
            "max_ms": round(max(ms, default=0.0), digits), "mean_ms": round(sum(ms) / len(ms), digits) if ms else 0.0}


CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")  # what decides int8/bf16 speed


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        lines = cpuinfo.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return platform.processor()
    return next((line.partition(":")[2].strip() for line in lines if line.startswith("model name")), platform.processor())


def machine_info() -> dict:
    """What a result depends on. Our machines change between sessions (one had AVX2 only, one
    AVX512-BF16), so the CPU's model and its matrix features go with every result."""
    import faiss
    import torch

    from core.config import auto_cpu_precision, cpu_flags

    flags = cpu_flags()
    return {"cpu_model": cpu_model(), "cpu_features": [f for f in CPU_FEATURES if f in flags],
            "auto_precision": auto_cpu_precision(),
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "faiss": faiss.__version__, "torch_threads": torch.get_num_threads(),
            "faiss_threads": faiss.omp_get_max_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def stamp() -> dict:
    """The command line and the time, for a result file."""
    return {"command": shlex.join([sys.executable, *sys.argv]), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_result(report: dict, path: Path, as_json: bool, table: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    print(json.dumps(report, ensure_ascii=False, indent=1) if as_json else f"{table}\nwritten: {path}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# -- the collection and its queries ------------------------------------------------------------------


def _pairs(folder: Path) -> list[tuple[str, str, str]]:
    from core.pairs import read_pairs

    return [(f"{tsv.stem}-{i}", en, zh) for tsv in sorted(folder.glob("*.tsv")) for i, (en, zh) in enumerate(read_pairs(tsv))]


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


def collection_texts(size: int, seed: int, tokenizer) -> list[dict]:
    """`size` rows {"id", "text", "lang"}: both sides of seeded train pairs (then dev) of 4-48 tokens."""
    from core.pairs import default_dev_dir, default_train_dir

    pool = []
    for folder in (default_train_dir(), default_dev_dir()):
        pairs = _pairs(folder)
        random.Random(seed).shuffle(pairs)
        pool += pairs
    rows, seen, lo, hi = [], set(), *TEXT_TOKENS
    for start in range(0, len(pool), 5000):
        block = pool[start : start + 5000]
        en_n, zh_n = _token_counts(tokenizer, [p[1] for p in block]), _token_counts(tokenizer, [p[2] for p in block])
        for (pid, en, zh), a, b in zip(block, en_n, zh_n):
            if lo <= a <= hi and lo <= b <= hi and en not in seen and zh not in seen:
                seen |= {en, zh}
                rows += [{"id": f"{pid}-en", "text": en, "lang": "en"}, {"id": f"{pid}-zh", "text": zh, "lang": "zh"}]
            if len(rows) >= size:
                return rows[:size]
    raise SystemExit(f"only {len(rows)} texts of {lo}-{hi} tokens in the train and dev pairs; ask for --size {len(rows)} or less")


def dev_queries(n: int, seed: int, tokenizer, exclude: set[str]) -> list[dict]:
    """n distinct dev sentences {"text", "lang"}, alternately English and Chinese, none in `exclude`."""
    from core.pairs import default_dev_dir

    pairs = _pairs(default_dev_dir())
    random.Random(seed + 1).shuffle(pairs)
    lo, hi = QUERY_TOKENS
    by_lang: dict[str, list[str]] = {"en": [], "zh": []}
    for side, lang in ((1, "en"), (2, "zh")):
        texts = list(dict.fromkeys(p[side] for p in pairs if p[side] not in exclude))
        by_lang[lang] = [t for t, c in zip(texts, _token_counts(tokenizer, texts)) if lo <= c <= hi]
    usable = min(len(v) for v in by_lang.values())
    if n > 2 * usable:
        raise SystemExit(f"only {2 * usable} usable dev queries (half per language); ask for {2 * usable} or fewer")
    return [{"text": by_lang[("en", "zh")[i % 2]][i // 2], "lang": ("en", "zh")[i % 2]} for i in range(n)]


def load_tokenizer(model_path: Path):
    """The model's tokenizer, for counting tokens (quiet about texts longer than the model's window)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(str(model_path))


def collection_dir(size: int, seed: int, model_path: Path) -> Path:
    from core.config import xlsearch_home

    return xlsearch_home() / "bench" / f"collection-{size}-{seed}-{Path(model_path).name}"


def ensure_collection(size: int, seed: int, model_path: Path) -> tuple[Path, dict]:
    """The index folder of the cached collection, built (or finished) first if needed; and its build summary."""
    folder = collection_dir(size, seed, model_path)
    done = folder / "done.json"
    if done.exists():
        return folder / "db", json.loads(done.read_text())
    texts = folder / "texts"
    if not texts.exists():  # written aside and renamed, so texts/ is always complete
        rows = collection_texts(size, seed, load_tokenizer(model_path))
        tmp = folder / "texts.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(rows), ROWS_PER_FILE):
            write_jsonl(tmp / f"part-{i // ROWS_PER_FILE:03d}.jsonl", rows[i : i + ROWS_PER_FILE])
        tmp.rename(texts)
    print(f"indexing {size} texts into {folder / 'db'} (cached for later runs; an interrupted build resumes)", file=sys.stderr)
    cmd = [sys.executable, "-m", "cli", "index", str(texts), "--db", str(folder / "db"),
           "--model", str(model_path), "--id-field", "id", "--json"]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise SystemExit(f"xlsearch index failed with status {out.returncode}: {shlex.join(cmd)}")
    summary = {**json.loads(out.stdout), "process_s": round(time.perf_counter() - t, 1), "command": shlex.join(cmd)}
    done.write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return folder / "db", summary


def collection_report(db: Path, summary: dict | None) -> dict:
    """What a result file says about the collection: chunks per language, tokens, model, disk."""
    from storage.store import Store

    with Store.open(db) as store:
        info = store.info()
        counts = store.documents.counts()
    return {"db": str(db), "chunks": info["chunks"], "documents": info["documents"], "chunks_by_lang": info["chunks_by_lang"],
            "mean_tokens": counts["mean_tokens"], "max_tokens": counts["max_tokens"], "model": info["model_path"],
            "index_type": info["index_type"], "size_bytes": info["size_bytes"], "build": summary}


def collection_texts_in(db: Path) -> set[str]:
    from storage.store import Store

    with Store.open(db) as store:
        return set(store.documents.document_texts())


def store_vectors(db: Path):
    """(chunk ids, vectors) of every chunk in an index, read from SQLite (the source of truth)."""
    from storage.store import Store

    with Store.open(db) as store:
        return store.documents.vectors()


def add_collection_args(ap) -> None:
    ap.add_argument("--size", type=int, default=100000, help="texts (= chunks) in the collection")
    ap.add_argument("--seed", type=int, default=0, help="picks the collection's texts and the queries")
    ap.add_argument("--model", default="base", help="name or folder, as xlsearch --model takes it (collection builds)")
    ap.add_argument("--db", type=Path, default=None, help="measure this existing index instead of the cached collection")


def collection_from_args(args) -> tuple[Path, dict | None, Path]:
    """(index folder, its build summary or None for --db, the index's model folder)."""
    from models.loading import resolve_model_path
    from storage.store import Store

    if args.db:
        db, summary = args.db, None
    else:
        db, summary = ensure_collection(args.size, args.seed, resolve_model_path(args.model))
    with Store.open(db) as store:
        return db, summary, Path(store.model_identity.path)
