"""How to cut a server's batch of queries: one padded batch, cut where padding grows, or one by one.

    python benchmarks/query_batches.py [--model default] [--queries 400] [--batch 8] [--repeats 3] [--json]

The server's micro-batcher hands the encoder up to 8 queries at a time (web/batching.py). Dev
queries (benchmarks/common.py: dev_queries, 2-64 tokens, half English, half Chinese) are encoded
`--batch` at a time, as `Encoder.encode_queries` does, under each cutting rule: the batch is
sorted by length, and a new model call starts where the next sequence is more than R times the
call's shortest (`Encoder.MAX_PADDING_RATIO`; R = inf is one padded call per batch, "singles" one
call per query). For each runtime (ONNX Runtime fp32; PyTorch at the CPU's auto precision), each
rule keeps its fastest of `--repeats` passes; reported in ms per query.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import dev_queries, load_tokenizer, machine_info, stamp, write_result  # noqa: E402

RULES = {"one padded call (R=inf)": math.inf, "R=3": 3.0, "R=2 (shipped)": 2.0, "R=1.5": 1.5, "singles": None}


def measure(encoder, queries: list[str], batch: int, repeats: int) -> dict[str, float]:
    from models.encoder import Encoder

    shipped = Encoder.MAX_PADDING_RATIO
    result = {}
    try:
        for label, ratio in RULES.items():
            Encoder.MAX_PADDING_RATIO = shipped if ratio is None else ratio
            size = 1 if ratio is None else batch
            best = math.inf
            for _ in range(repeats):
                t = time.perf_counter()
                for i in range(0, len(queries), batch):
                    encoder.encode(queries[i : i + batch], "query", size)
                best = min(best, time.perf_counter() - t)
            result[label] = round(best / len(queries) * 1000, 2)
    finally:
        Encoder.MAX_PADDING_RATIO = shipped
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "query-batches.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from models.loading import load_encoder, resolve_model_path

    queries = [q["text"] for q in dev_queries(args.queries, 0, load_tokenizer(resolve_model_path(args.model)), set())]
    runs = {}
    for runtime in ("onnx", "torch"):
        encoder = load_encoder(args.model, runtime=runtime)
        encoder.encode(queries[:16], "query")
        runs[f"{runtime} {encoder.precision}"] = measure(encoder, queries, args.batch, args.repeats)
    report = {"benchmark": "query-batches", **stamp(), "model": args.model, "queries": len(queries), "batch": args.batch,
              "repeats": args.repeats, "ms_per_query": runs, "machine": machine_info()}
    lines = [f"{'rule':<26}" + "".join(f"{name:>14}" for name in runs)]
    lines += [f"{rule:<26}" + "".join(f"{runs[name][rule]:>14}" for name in runs) for rule in RULES]
    write_result(report, args.out, args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
