"""Bitext retrieval accuracy of an encoder on the shared dev sets, both directions.

    python benchmarks/bitext.py [--model PATH] [--data ../shared/data/parallel/dev] [--sets news_wmt19] [--json]

Dev data only (never train/ or public test sets). Prints one row per set and prompt mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data import read_pairs  # noqa: E402
from training.evaluate import bitext_accuracy  # noqa: E402
from xlsearch.encoder import Encoder  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "parallel" / "dev"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the bundled default)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", nargs="+", default=["news_wmt19"], help="dev file stems, or 'all'")
    ap.add_argument("--kinds", nargs="+", default=["query", "passage"])
    ap.add_argument("--limit", type=int, default=None, help="first N pairs of each set")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    encoder = Encoder.load(args.model)
    sets = sorted(p.stem for p in args.data.glob("*.tsv")) if args.sets == ["all"] else args.sets
    rows = []
    for name in sets:
        pairs = read_pairs(args.data / f"{name}.tsv", args.limit)
        for kind in args.kinds:
            t = time.perf_counter()
            r = bitext_accuracy(encoder, pairs, kind)
            rows.append({"set": name, "kind": kind, "pairs": r.pairs, "en_to_zh": round(r.en_to_zh, 4),
                         "zh_to_en": round(r.zh_to_en, 4), "seconds": round(time.perf_counter() - t, 1)})
    if args.json:
        print(json.dumps({"model": encoder.name, "rows": rows}, ensure_ascii=False, indent=2))
        return
    print(f"model: {encoder.name}")
    print(f"{'set':<20} {'prompt':<8} {'pairs':>6} {'en→zh':>7} {'zh→en':>7} {'sec':>6}")
    for r in rows:
        print(f"{r['set']:<20} {r['kind']:<8} {r['pairs']:>6} {r['en_to_zh']:>7.4f} {r['zh_to_en']:>7.4f} {r['seconds']:>6}")


if __name__ == "__main__":
    main()
