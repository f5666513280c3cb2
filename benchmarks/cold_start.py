"""How long a fresh process takes: one CLI search, a plain sentence-transformers query, an index run.

    python benchmarks/cold_start.py [--repeats 7] [--out PATH] [--json]

Every measurement is the wall time of a whole fresh subprocess on this machine, from just before
it is started (`subprocess`, `sys.executable`, cwd = the repo root, HF_HUB_OFFLINE=1) until it has
exited: interpreter start-up, imports, model load, the work and shutdown are all included; the
parent's own set-up is not. Commands (each for the English query "how do I configure the network"
and the Chinese one "如何配置网络"):

- search/onnx, search/torch: `python -m cli search QUERY --db DB -k 10 --runtime R` on a small
  index (the default model), built once per benchmark run in a temporary folder from the first 10
  `.md` files (sorted) of demo/corpus/en and of demo/corpus/zh with `python -m cli -q index`
  (that build is not timed). Output goes to a pipe and is discarded.
- baseline: `python -c` doing what a plain sentence-transformers user does for one query:
  `SentenceTransformer(BASE, device="cpu").encode(["query: " + QUERY], normalize_embeddings=True)`,
  BASE = `models.loading.resolve_model_path("base")` (resolved once, in this process). No index,
  no search: only load and encode.
- index: `python -m cli -v index FILES --db TMP` (the same 20 files, a fresh empty TMP each run,
  default model and runtime). Two times: until the first stderr line that starts with "embedding"
  arrives (read line by line; this relies on the `log.info("embedding %d chunks ...")` that
  indexer/pipeline.py logs before its first batch; if no such line appears, the total is recorded
  and `no_embedding_line` counts the runs; the first matching line is kept as `embedding_line`)
  and until the process exits.

First one untimed run of each command (warms the OS page cache), then `--repeats` rounds, each
running every command once in the same round-robin order, so drift hits all of them alike.
Reported per command: median, min, max (seconds) and n. Ratios: baseline median / search median,
per runtime and query (the issue's target: a CLI search >= 4x faster than a fresh plain
sentence-transformers load-and-encode). One extra run of each search/onnx command under
`python -X importtime` records whether torch, transformers or sentence_transformers got imported.
Any run that fails, or has not exited after 300 s, stops the benchmark with its stderr.
Writes benchmarks/results/cold-start.json (or `--out`); prints a table, or the JSON with `--json`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import RESULTS, machine_info, stamp, write_result  # noqa: E402

QUERIES = {"en": "how do I configure the network", "zh": "如何配置网络"}
RUNTIMES = ("onnx", "torch")
HEAVY = ("torch", "transformers", "sentence_transformers")
TIMEOUT_S = 300  # one fresh run takes seconds; a hung one fails the benchmark instead of blocking it
EMBEDDING_LINE = re.compile(r"^embedding\b")
BASELINE = ("from sentence_transformers import SentenceTransformer; import sys; "
            "m = SentenceTransformer(sys.argv[1], device='cpu'); m.encode(['query: ' + sys.argv[2]], normalize_embeddings=True)")


def timed_run(cmd: list[str], timeout: float = TIMEOUT_S) -> float:
    """Seconds from starting `cmd` until it exits; a failure or a hang stops the benchmark."""
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise SystemExit(f"no exit after {timeout} s: {cmd}\n{err[-2000:]}") from None
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {cmd}\n{done.stderr[-2000:]}")
    return elapsed


def first_line_run(cmd: list[str], pattern: re.Pattern = EMBEDDING_LINE, timeout: float = TIMEOUT_S) -> dict:
    """Seconds from starting `cmd` until its first stderr line matching `pattern`, and until it exits."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    first, matched, tail = None, None, []
    for line in proc.stderr:
        if first is None and pattern.search(line.strip()):
            first, matched = time.perf_counter() - t, line.strip()
        tail = (tail + [line])[-20:]
    rc = proc.wait()
    total = time.perf_counter() - t
    killer.cancel()
    if rc != 0:
        why = f"no exit after {timeout} s" if total >= timeout else "failed"
        raise SystemExit(f"{why} ({rc}): {cmd}\n{''.join(tail)}")
    return {"first_s": total if first is None else first, "total_s": total, "found": first is not None, "line": matched}


def imported_heavy(importtime_stderr: str) -> list[str]:
    """Which of HEAVY a `python -X importtime` stderr shows imported (top-level packages)."""
    found = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name.split(".")[0] in HEAVY:
                found.add(name.split(".")[0])
    return sorted(found)


def summarize(seconds: list[float]) -> dict:
    return {"n": len(seconds), "median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3), "max_s": round(max(seconds), 3)}


def ratios(summaries: dict) -> dict:
    """baseline median / search median for every `search/<runtime>/<lang>` with a `baseline/<lang>`."""
    out = {}
    for name, s in summaries.items():
        if name.startswith("search/"):
            lang = name.rsplit("/", 1)[1]
            out[f"baseline/{lang} / {name}"] = round(summaries[f"baseline/{lang}"]["median_s"] / s["median_s"], 2)
    return out


def corpus_files(corpus: Path, per_lang: int = 10) -> list[Path]:
    return [f for lang in ("en", "zh") for f in sorted((corpus / lang).glob("*.md"))[:per_lang]]


def commands(db: Path, base: Path, files: list[Path], scratch: Path) -> dict:
    """name -> a function returning the argv of one fresh run (index gets a new empty db each time)."""
    py, runs, counter = sys.executable, {}, iter(range(10**9))
    for runtime in RUNTIMES:
        for lang, q in QUERIES.items():
            runs[f"search/{runtime}/{lang}"] = lambda q=q, r=runtime: [py, "-m", "cli", "search", q, "--db", str(db), "-k", "10", "--runtime", r]
    for lang, q in QUERIES.items():
        runs[f"baseline/{lang}"] = lambda q=q: [py, "-c", BASELINE, str(base), q]
    runs["index"] = lambda: [py, "-m", "cli", "-v", "index", *map(str, files), "--db", str(scratch / f"db-{next(counter)}")]
    return runs


def measure(runs: dict, repeats: int) -> tuple[dict, dict]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    index_total, missing, line = [], 0, None
    for round_ in range(repeats + 1):  # round 0: untimed warm-up
        for name, argv in runs.items():
            if name == "index":
                r = first_line_run(argv())
                if round_:
                    times[name].append(r["first_s"])
                    index_total.append(r["total_s"])
                    missing += not r["found"]
                    line = line or r["line"]
            else:
                t = timed_run(argv())
                if round_:
                    times[name].append(t)
    summaries = {("index/first_embedding" if n == "index" else n): summarize(v) for n, v in times.items()}
    summaries["index/total"] = summarize(index_total)
    return summaries, {"no_embedding_line": missing, "embedding_line": line}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed fresh runs of each command")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from models.loading import resolve_model_path

    base, files = resolve_model_path("base"), corpus_files(ROOT / "demo" / "corpus")
    with tempfile.TemporaryDirectory(prefix="xlsearch-cold-") as tmp:
        db = Path(tmp) / "db"
        timed_run([sys.executable, "-m", "cli", "-q", "index", *map(str, files), "--db", str(db)])
        runs = commands(db, base, files, Path(tmp))
        heavy = {}
        for lang in QUERIES:
            argv = [sys.executable, "-X", "importtime", *runs[f"search/onnx/{lang}"]()[1:]]
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
            if done.returncode != 0:
                raise SystemExit(f"importtime search failed ({done.returncode}):\n{done.stderr[-2000:]}")
            heavy[lang] = imported_heavy(done.stderr)
        summaries, flags = measure(runs, args.repeats)
    report = {"benchmark": "cold_start", **stamp(), "repeats": args.repeats, "queries": QUERIES, "files": [str(f.relative_to(ROOT)) for f in files],
              "base_model": str(base), "results": summaries, "ratios": ratios(summaries), "target_ratio": 4.0,
              "onnx_search_imported": heavy, **flags, "machine": machine_info()}
    lines = [f"{'command':<24} {'median s':>9} {'min s':>7} {'max s':>7}"]
    lines += [f"{n:<24} {s['median_s']:>9.3f} {s['min_s']:>7.3f} {s['max_s']:>7.3f}" for n, s in summaries.items()]
    lines += [f"{n}: {v}x" for n, v in report["ratios"].items()]
    lines += [f"onnx search imported: {heavy}", f"index runs without an 'embedding' line: {flags['no_embedding_line']}"]
    write_result(report, args.out or RESULTS / "cold-start.json", args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
