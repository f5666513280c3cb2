"""Encoder candidates side by side on the same texts: plain sentence-transformers against xlsearch's
models and runtimes — what "less work per chunk" buys, measured in one run.

    python benchmarks/runtimes.py [--texts 300] [--batch 32] [--candidates NAME ...] [--json]

Texts: the first `--texts` chunks (by id) of the demo corpus as `xlsearch index` cuts it (demo/corpus,
up to 256 tokens each; the index is built once into a temporary folder with the default model —
chunk boundaries do not depend on the model). Every candidate embeds exactly these texts as
passages, in its own fresh subprocess (`--child`), so load time and peak RSS are its own:

- load_s: from before constructing the encoder to ready (imports of torch/onnxruntime included,
  as a fresh `xlsearch` process pays them; the interpreter start and numpy are not);
- encode_s: embedding all texts, batch `--batch`, after one untimed warm-up batch of 4 texts;
- tokens_per_s: content tokens + prompt + specials (counted once, with the base tokenizer — every
  candidate shares that tokenizer) over encode_s; ratio: against the baseline of the same run;
- peak_rss_mb: the child's `ru_maxrss` at the end;
- cosine_to_own_torch_fp32: for xlsearch candidates, the mean cosine of its vectors to those of the
  same model on torch fp32 (what bf16, int8 or ONNX change; 1.0 for that reference itself).

Candidates (names for `--candidates`):
baseline         SentenceTransformer(base).encode(texts, prompt="passage: ", batch_size, normalize) fp32
default-torch    xlsearch default model, TorchEncoder fp32 (length-sorted batches, windows)
default-bf16     the same, torch bf16 (fast on CPUs with AVX512-BF16 or AMX-BF16: machine_info says)
default-int8     the same, torch dynamic int8
default-onnx     the same model on ONNX Runtime (OnnxEncoder)
fast-torch       the 6-layer student (`--model fast`), torch fp32
fast-bf16        the student, torch bf16
fast-int8        the student, torch dynamic int8
fast-onnx        the student on ONNX Runtime
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_info, stamp, write_result  # noqa: E402

CANDIDATES = {
    "baseline": ("base", "plain", "fp32"),
    "default-torch": ("default", "torch", "fp32"),
    "default-bf16": ("default", "torch", "bf16"),
    "default-int8": ("default", "torch", "int8"),
    "default-onnx": ("default", "onnx", "fp32"),
    "fast-torch": ("fast", "torch", "fp32"),
    "fast-bf16": ("fast", "torch", "bf16"),
    "fast-int8": ("fast", "torch", "int8"),
    "fast-onnx": ("fast", "onnx", "fp32"),
}


def child(name: str, texts: list[str], batch: int, out: Path) -> None:
    import numpy as np

    model, runtime, precision = CANDIDATES[name]
    t = time.perf_counter()
    if runtime == "plain":
        from sentence_transformers import SentenceTransformer

        from models.loading import resolve_model_path

        st = SentenceTransformer(str(resolve_model_path(model)), device="cpu")
        load_s = time.perf_counter() - t

        def encode(items):
            return st.encode(items, prompt="passage: ", batch_size=batch, normalize_embeddings=True)
    else:
        from models.loading import load_encoder

        encoder = load_encoder(model, precision=precision, runtime=runtime)
        load_s = time.perf_counter() - t

        def encode(items):
            return encoder.encode(items, "passage", batch)
    encode(texts[:4])
    t = time.perf_counter()
    vectors = np.asarray(encode(texts), np.float32)
    encode_s = time.perf_counter() - t
    np.save(out.with_suffix(".npy"), vectors)
    out.write_text(json.dumps({"load_s": round(load_s, 2), "encode_s": round(encode_s, 2),
                               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def demo_chunks(n: int, work: Path) -> list[str]:
    import sqlite3

    db = work / "demo-db"
    subprocess.run([sys.executable, "-m", "cli", "-q", "index", str(ROOT / "demo" / "corpus"), "--db", str(db)], check=True, cwd=ROOT)
    with sqlite3.connect(db / "index.sqlite") as conn:
        rows = conn.execute('select substr(d.text, c.start + 1, c."end" - c.start) from chunks c '
                            "join documents d on d.id = c.doc_id order by c.id limit ?", (n,)).fetchall()
    return [r[0] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "runtimes.json")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        texts = json.loads((args.work / "texts.json").read_text())
        child(args.child, texts, args.batch, args.work / f"{args.child}.json")
        return

    import numpy as np
    from transformers import AutoTokenizer

    from models.loading import resolve_model_path

    with tempfile.TemporaryDirectory(prefix="xlsearch-runtimes-") as tmp:
        work = Path(tmp)
        texts = demo_chunks(args.texts, work)
        (work / "texts.json").write_text(json.dumps(texts, ensure_ascii=False))
        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path("base")))
        tokens = sum(len(ids) for ids in tokenizer(["passage: " + t for t in texts], truncation=False)["input_ids"])
        results, vectors = {}, {}
        for name in args.candidates:
            subprocess.run([sys.executable, __file__, "--child", name, "--work", str(work), "--batch", str(args.batch)],
                           check=True, cwd=ROOT)
            results[name] = json.loads((work / f"{name}.json").read_text())
            vectors[name] = np.load(work / f"{name}.npy")
    base = results.get("baseline")
    for name, r in results.items():
        r["tokens_per_s"] = round(tokens / r["encode_s"], 1)
        if base:
            r["ratio_vs_baseline"] = round(base["encode_s"] / r["encode_s"], 2)
        ref = f"{CANDIDATES[name][0]}-torch"
        if name != "baseline" and ref in vectors:
            r["cosine_to_own_torch_fp32"] = round(float((vectors[name] * vectors[ref]).sum(axis=1).mean()), 5)
    report = {"benchmark": "runtimes", **stamp(), "texts": len(texts), "tokens": tokens, "batch": args.batch,
              "candidates": results, "machine": machine_info()}
    lines = [f"{'candidate':<15} {'load s':>7} {'encode s':>9} {'tokens/s':>9} {'x base':>7} {'RSS MB':>7} {'cos':>8}"]
    for name, r in results.items():
        lines.append(f"{name:<15} {r['load_s']:>7} {r['encode_s']:>9} {r['tokens_per_s']:>9} {r.get('ratio_vs_baseline', '-'):>7} "
                     f"{r['peak_rss_mb']:>7} {r.get('cosine_to_own_torch_fp32', '-'):>8}")
    write_result(report, args.out, args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
