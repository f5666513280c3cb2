"""Cross-lingual retrieval on the demo corpus: where does each example query's answer rank?

    python benchmarks/demo_queries.py --db .cache/demo-index [--model PATH] [--json]

Uses demo/queries.tsv (every answer exists only in the other language) against an index of
demo/corpus (build it with `xlsearch index demo/corpus --db DIR`). Reports hit@1, hit@5 and
MRR@10 over documents, in the mixed ranking and with --lang set to the answer's language.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xlsearch import Index  # noqa: E402


def rank_of(hits, expected: str) -> int | None:
    for h in hits:
        if h.path.endswith(expected):
            return h.rank
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--queries", type=Path, default=ROOT / "demo" / "queries.tsv")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = list(csv.DictReader(args.queries.open(encoding="utf-8"), delimiter="\t"))
    with Index(args.db, args.model) as index:
        results = []
        for row in rows:
            other = row["expected_file"].split("/")[0]
            mixed = rank_of(index.search(row["query"], k=10), row["expected_file"])
            filtered = rank_of(index.search(row["query"], k=10, lang=other), row["expected_file"])
            results.append({"query": row["query"], "lang": row["lang"], "mixed_rank": mixed, "filtered_rank": filtered})
        model_name = index.encoder.name

    def summary(key: str) -> dict:
        ranks = [r[key] for r in results]
        return {
            "hit@1": sum(r == 1 for r in ranks) / len(ranks),
            "hit@5": sum(r is not None and r <= 5 for r in ranks) / len(ranks),
            "mrr@10": sum(1 / r for r in ranks if r) / len(ranks),
        }

    report = {"model": model_name, "queries": len(results), "mixed": summary("mixed_rank"),
              "filtered": summary("filtered_rank"), "per_query": results}
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print(f"model: {model_name}; {len(results)} queries, each answer only in the other language")
    for name in ("mixed", "filtered"):
        s = report[name]
        print(f"{name:<9} hit@1 {s['hit@1']:.3f}  hit@5 {s['hit@5']:.3f}  MRR@10 {s['mrr@10']:.3f}")
    for r in results:
        print(f"  {r['mixed_rank'] or '-':>3} {r['filtered_rank'] or '-':>3}  {r['query']}")


if __name__ == "__main__":
    main()
