"""Vocabulary pruning: the default encoder against its en/zh-pruned copy (models/vocab.py).

    python benchmarks/vocab.py [--model default] [--per-file 25] [--loads 3] [--json]

Prunes the model afresh into `$XLSEARCH_HOME/bench/vocab-pruned-<model folder>` and reports, for
the original and the pruned folder:

- pieces in the vocabulary, model.safetensors bytes, folder bytes (every file at its full size,
  hard links included — what copying the folder elsewhere would take);
- load time: `TorchEncoder(path)` in a fresh Python process (imports of torch, transformers and
  sentence-transformers done before the clock starts), median of `--loads`
  runs. "Cold-ish": each run is a new process, but the OS page cache is warm after the first,
  so this measures deserialising and building the model, not disk reads;
- peak RSS (VmHWM) of that process after loading, and after also embedding 100 dev sentences
  (medians of the runs);
- the share of all dev sentences made only of allowed characters, and the other characters;
- on `--per-file` pairs of every dev TSV (both sides), plus every dev sentence with a character
  outside the allowed set: how many are made only of allowed characters, how many tokenise
  identically, and the max |difference| of their vectors (query and passage mode) — for those
  and, separately, for the rest, which are allowed to differ.

Results: benchmarks/results/vocab.json. Run one heavy process at a time on a shared machine
(the committed numbers were taken with `nice -n 15` and `OMP_NUM_THREADS=1` on a 2-core machine
another benchmark was also using: compare the two rows, not absolute times).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import RESULTS, machine_info, stamp, write_result  # noqa: E402
from core.config import xlsearch_home  # noqa: E402
from core.pairs import default_dev_dir, read_pairs  # noqa: E402
from models.loading import resolve_model_path  # noqa: E402
from models.vocab import allowed_chars, prune_vocabulary, text_is_covered, weights_file  # noqa: E402

# Imports happen before the clock starts (they cost ~8 s on this machine and do not depend on the
# model). Peak RSS is VmHWM from /proc: getrusage's ru_maxrss survives fork+exec, so a child
# would report its parent's peak (this script's, after pruning) instead of its own.
_LOAD_SCRIPT = """
import json, sys, time
import sentence_transformers, transformers, torch
from models.torch_encoder import TorchEncoder
def hwm_mb():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
texts = json.loads(sys.stdin.read())
t0 = time.perf_counter()
enc = TorchEncoder(sys.argv[1])
load_s = time.perf_counter() - t0
rss_loaded = hwm_mb()
enc.encode(texts, "passage")
print(json.dumps({"load_s": load_s, "peak_rss_mb_loaded": rss_loaded, "peak_rss_mb": hwm_mb()}))
"""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def load_runs(path: Path, texts: list[str], runs: int) -> dict:
    """Median load time and peak RSS over `runs` fresh processes."""
    results = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, str(path)], input=json.dumps(texts),
                              capture_output=True, text=True, cwd=ROOT, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"load_s_median": round(statistics.median(r["load_s"] for r in results), 3),
            "load_s_runs": [round(r["load_s"], 3) for r in results],
            "peak_rss_mb_after_load_median": round(statistics.median(r["peak_rss_mb_loaded"] for r in results), 1),
            "peak_rss_mb_median": round(statistics.median(r["peak_rss_mb"] for r in results), 1)}


def compare(original: Path, pruned: Path, texts: list[str]) -> dict:
    from models.torch_encoder import TorchEncoder

    allowed = allowed_chars()
    covered = np.array([text_is_covered(t, allowed) for t in texts])
    out: dict = {"sentences": len(texts), "covered": int(covered.sum())}
    vectors, tokens = {}, {}
    for name, path in (("original", original), ("pruned", pruned)):
        enc = TorchEncoder(path)  # one model in memory at a time
        tokens[name] = [enc.tokenizer.convert_ids_to_tokens(ids) for ids in enc._ids(texts)]
        vectors[name] = {kind: enc.encode(texts, kind) for kind in ("query", "passage")}
        del enc
    same_tokens = np.array([a == b for a, b in zip(tokens["original"], tokens["pruned"])])
    out["covered_same_tokens"] = int((same_tokens & covered).sum())
    out["uncovered_same_tokens"] = int((same_tokens & ~covered).sum())
    for kind in ("query", "passage"):
        diff = np.abs(vectors["original"][kind] - vectors["pruned"][kind]).max(axis=1)
        out[f"max_abs_diff_{kind}_covered"] = float(diff[covered].max()) if covered.any() else None
        out[f"max_abs_diff_{kind}_uncovered"] = float(diff[~covered].max()) if (~covered).any() else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="Model name or folder to prune (default: default).")
    ap.add_argument("--per-file", type=int, default=25, help="Pairs from each dev TSV for the comparison.")
    ap.add_argument("--loads", type=int, default=3, help="Fresh processes per model for load time and RSS.")
    ap.add_argument("--out", type=Path, default=RESULTS / "vocab.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    original = resolve_model_path(args.model)
    pruned = xlsearch_home() / "bench" / f"vocab-pruned-{original.name}"
    shutil.rmtree(pruned, ignore_errors=True)
    pruned.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prune_vocabulary(original, pruned)
    prune_s = time.perf_counter() - t0

    dev = default_dev_dir()
    texts = [t for path in sorted(dev.glob("*.tsv")) for pair in read_pairs(path, args.per_file) for t in pair]
    sample = texts[:: max(1, len(texts) // 100)][:100]  # for the RSS measurement
    allowed = allowed_chars()
    every = [t for path in sorted(dev.glob("*.tsv")) for pair in read_pairs(path) for t in pair]
    uncovered = [t for t in every if not text_is_covered(t, allowed)]
    coverage = {"dev_sentences": len(every), "dev_sentences_only_allowed_chars": len(every) - len(uncovered),
                "fraction": round(1 - len(uncovered) / len(every), 5),
                "other_chars": dict(Counter(c for t in uncovered for c in t if c not in allowed).most_common(20))}
    texts += [t for t in uncovered if t not in texts]  # to show what changes there
    report = {**stamp(), "machine": machine_info(), "original": str(original), "pruned": str(pruned),
              "prune_s": round(prune_s, 2), "dev_coverage": coverage, "models": {}}
    for name, path in (("original", original), ("pruned", pruned)):
        spec = json.loads((weights_file(path).parent / "tokenizer.json").read_text(encoding="utf-8"))
        report["models"][name] = {
            "pieces": len(spec["model"]["vocab"]),
            "model_safetensors_bytes": weights_file(path).stat().st_size,
            "folder_bytes": folder_bytes(path),
            **load_runs(path, sample, args.loads),
        }
    report["dev"] = {"data": str(dev), "per_file": args.per_file, "plus": "every dev sentence with other characters",
                     **compare(original, pruned, texts)}
    o, p = report["models"]["original"], report["models"]["pruned"]
    report["ratios"] = {k: round(p[k] / o[k], 3) for k in ("pieces", "model_safetensors_bytes", "folder_bytes", "load_s_median",
                                                         "peak_rss_mb_after_load_median", "peak_rss_mb_median")}
    d = report["dev"]
    table = "\n".join([
        f"{'':<10}{'pieces':>9}{'weights MB':>12}{'folder MB':>11}{'load s':>8}{'peak RSS MB':>13}",
        *(f"{n:<10}{m['pieces']:>9}{m['model_safetensors_bytes'] / 1e6:>12.1f}{m['folder_bytes'] / 1e6:>11.1f}"
          f"{m['load_s_median']:>8.2f}{m['peak_rss_mb_median']:>13.0f}" for n, m in report["models"].items()),
        f"all dev: {coverage['fraction']:.2%} of {coverage['dev_sentences']} sentences use only allowed chars",
        f"compared: {d['covered']}/{d['sentences']} sentences use only allowed chars; identical tokens {d['covered_same_tokens']}/{d['covered']}; "
        f"max |diff| query {d['max_abs_diff_query_covered']:.2e} passage {d['max_abs_diff_passage_covered']:.2e}",
    ])
    write_result(report, args.out, args.json, table)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
