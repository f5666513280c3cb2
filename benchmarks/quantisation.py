"""Which reduced precision: bf16, or an int8 recipe (per-tensor or per-channel weight scales, which
Linear layers stay fp32) — speed against fp32 and closeness to the fp32 vectors, the same model and
texts in one run.

    python benchmarks/quantisation.py [--model default] [--texts 300] [--batch 32] [--repeats 3] [--json]

Texts: the first `--texts` chunks of the demo corpus as `xlsearch index` cuts it (the same texts
benchmarks/runtimes.py uses). Every recipe starts from a fresh fp32 `TorchEncoder` of `--model` and
embeds them as passages, batch `--batch`, after one untimed warm-up batch; one process, so the
recipes share the machine's state and `encode_s` compares them (load time and RSS are runtimes.py's
job). The recipes take turns, `--repeats` rounds, and each keeps its fastest round: on a shared
2-core machine one pass in a fixed order drifted by ±10 % between runs. Recipes:

fp32                 the reference
bf16                 `TorchEncoder(precision="bf16")`: the transformer in bfloat16, pooling after it fp32
                     (fast only on a CPU with AVX512-BF16 or AMX-BF16; machine_info lists them)
per-tensor-all       torch quantize_dynamic, one scale per weight matrix, every transformer Linear
                     (what `--precision int8` was before)
per-channel-all      one scale per output channel, every transformer Linear
per-channel-down-fp32  the same, but the down-projections (in_features > out_features: the
                     feed-forward output) kept fp32
shipped-int8         `TorchEncoder(precision="int8")`: models/int8.py's recipe, the previous one
                     with SmoothQuant (α 0.5) calibrated on the package's calibration sentences

Reported per recipe: encode_s, speedup against fp32, and the cosine of each vector to its fp32
vector (mean, 5th percentile, worst). Whether a recipe is good enough for retrieval is
`xlsearch eval --precision int8|bf16`'s question (docs/eval/), not this one's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_info, stamp, write_result  # noqa: E402
from benchmarks.runtimes import demo_chunks  # noqa: E402

RECIPES = ("fp32", "bf16", "per-tensor-all", "per-channel-all", "per-channel-down-fp32", "shipped-int8")


def build(recipe: str, model: str):
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    from models.int8 import quantised_linears
    from models.loading import load_encoder

    if recipe in ("shipped-int8", "bf16"):
        return load_encoder(model, runtime="torch", precision="int8" if recipe == "shipped-int8" else "bf16")
    encoder = load_encoder(model, runtime="torch", precision="fp32")
    if recipe != "fp32":
        transformer = encoder.model[0].auto_model
        if recipe == "per-channel-down-fp32":
            spec = dict.fromkeys(quantised_linears(transformer), per_channel_dynamic_qconfig)
        else:
            spec = {torch.nn.Linear: per_channel_dynamic_qconfig if recipe == "per-channel-all" else default_dynamic_qconfig}
        quantize_dynamic(transformer, spec, dtype=torch.qint8, inplace=True)
    return encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each recipe keeps its fastest")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quantisation.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import warnings

    import numpy as np

    warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
    with tempfile.TemporaryDirectory(prefix="xlsearch-quant-") as tmp:
        texts = demo_chunks(args.texts, Path(tmp))
    encoders = {recipe: build(recipe, args.model) for recipe in RECIPES}
    seconds: dict[str, list[float]] = {recipe: [] for recipe in RECIPES}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for recipe, encoder in encoders.items():
            encoder.encode(texts[:4], "passage", args.batch)
            t = time.perf_counter()
            vectors[recipe] = np.asarray(encoder.encode(texts, "passage", args.batch), np.float32)
            seconds[recipe].append(time.perf_counter() - t)
    results = {}
    for recipe in RECIPES:
        cos = (vectors[recipe] * vectors["fp32"]).sum(axis=1)
        results[recipe] = {"encode_s": round(min(seconds[recipe]), 2), "rounds_s": [round(x, 2) for x in seconds[recipe]],
                           "speedup_vs_fp32": round(min(seconds["fp32"]) / min(seconds[recipe]), 2),
                           "cosine_mean": round(float(cos.mean()), 4), "cosine_p5": round(float(np.percentile(cos, 5)), 4),
                           "cosine_min": round(float(cos.min()), 4)}
    report = {"benchmark": "quantisation", **stamp(), "model": args.model, "texts": len(texts), "batch": args.batch,
              "repeats": args.repeats, "recipes": results, "machine": machine_info()}
    lines = [f"{'recipe':<22} {'encode s':>9} {'x fp32':>7} {'cos mean':>9} {'cos p5':>7} {'cos min':>8}"]
    for name, r in results.items():
        lines.append(f"{name:<22} {r['encode_s']:>9} {r['speedup_vs_fp32']:>7} {r['cosine_mean']:>9} "
                     f"{r['cosine_p5']:>7} {r['cosine_min']:>8}")
    write_result(report, args.out, args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
