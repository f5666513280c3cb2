"""Could queries be embedded by a smaller model than the passages? Quality on every dev set.

    python benchmarks/asymmetric_queries.py [--query-model fast] [--passage-model default] [--json]
    python benchmarks/asymmetric_queries.py --query-model default --query-precision int8

A search's encoder cost is its query; the index's passages were embedded once. `--model fast`
(the 6-layer student) was trained to put each text where the default puts it (training/recipes/
cpu-fast-student.yaml: `distill.target: same_text`), so its query vectors might search the
default's passage vectors: half the encoder work per query, no re-indexing. This runs
`training.evaluate.run_eval` (what `xlsearch eval` reports) twice on the dev sets — both sides by
the passage model, then queries by the query model and passages by the passage model — both fp32
on ONNX Runtime, and prints the differences. The rule for a faster default (issue 14) applies:
at most 1 point lost per dev cell and nothing on same-language.

`--query-precision int8` asks the same of int8 queries (ONNX Runtime's int8 graph,
models/onnx_int8.py) against fp32 passages: what `search --precision int8` does to an index.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info, stamp, write_result  # noqa: E402

CELLS = ("mrr10_en_zh", "mrr10_zh_en", "bitext_en_zh", "bitext_zh_en")


class SplitEncoder:
    """What run_eval needs of an encoder, with "query" texts sent to one model and the rest to another."""

    precision = "fp32"

    def __init__(self, queries, passages):
        self.queries, self.passages = queries, passages
        self.name = f"queries: {queries.name}; passages: {passages.name}"
        self.fingerprint = hashlib.sha256((queries.fingerprint + passages.fingerprint).encode()).hexdigest()[:16]

    def encode(self, texts, mode: str = "passage", batch_size: int = 32, *args, **kwargs):
        return (self.queries if mode == "query" else self.passages).encode(texts, mode, batch_size, *args, **kwargs)


def main() -> None:
    from core.pairs import default_dev_dir
    from models.loading import load_encoder
    from training.evaluate import run_eval

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--query-model", default="fast")
    ap.add_argument("--passage-model", default="default")
    ap.add_argument("--query-precision", choices=("fp32", "int8"), default="fp32")
    ap.add_argument("--data", type=Path, default=None, help="dev TSV folder (default: the shared dev sets)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "asymmetric-queries.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = args.data or default_dev_dir()
    passages = load_encoder(args.passage_model, precision="fp32", runtime="onnx")
    queries = load_encoder(args.query_model, precision=args.query_precision, runtime="onnx")
    same = run_eval(passages, data, progress=False)
    split = run_eval(SplitEncoder(queries, passages), data, progress=False)
    lines = [f"{'set / cell':<34}{'same model':>11}{'split':>9}{'points':>8}"]
    losses = []
    for a, b in zip(same["sets"], split["sets"]):
        for cell in CELLS:
            points = round(100 * (b[cell] - a[cell]), 2)
            losses.append(points)
            lines.append(f"{a['set'] + ' ' + cell:<34}{a[cell]:>11.4f}{b[cell]:>9.4f}{points:>8.2f}")
    for lang in ("en", "zh"):
        a, b = same["same_language"][lang]["mrr10"], split["same_language"][lang]["mrr10"]
        losses.append(round(100 * (b - a), 2))
        lines.append(f"{'same-language ' + lang + ' mrr10':<34}{a:>11.4f}{b:>9.4f}{100 * (b - a):>8.2f}")
    rule = min(losses[:-2]) >= -1.0 and min(losses[-2:]) >= 0.0
    lines.append(f"worst dev cell {min(losses[:-2]):.2f} points, same-language {min(losses[-2:]):.2f}: rule {'met' if rule else 'NOT met'}")
    report = {"benchmark": "asymmetric_queries", **stamp(), "query_model": queries.name, "query_precision": queries.precision, "passage_model": passages.name,
              "same_model": same, "split": split, "worst_cell_points": min(losses[:-2]),
              "worst_same_language_points": min(losses[-2:]), "rule_met": rule, "machine": machine_info()}
    write_result(report, args.out, args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
