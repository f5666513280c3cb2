"""Dev check for query → passage training: does a help page's heading find the section under it?

    python benchmarks/section_retrieval.py --model runs/cpu-pages/model-centered [--json]

Raw embeddings, no index. The pairs are `training.page_pairs`' (headings and index keywords →
their sections, LibreOffice help in English and Chinese) from the *dev pages* only — the quarter
no recipe trains on (`dev_page`). In each direction (en→en, zh→zh, en→zh, zh→en) every query
searches all dev passages of the target language: R@1 and MRR@10. The same-language directions
are the dev-side stand-in for question → paragraph search in one language, which a recipe must
not lose (the held-out check of that is XQuAD: benchmarks/heldout.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.loading import load_encoder  # noqa: E402
from training.page_pairs import libreoffice_pairs  # noqa: E402

HAN = re.compile(r"[\u4e00-\u9fff]")


def lang(text: str) -> str:
    return "zh" if HAN.search(text) else "en"


def directions(pairs: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for q, p in pairs:
        out.setdefault(f"{lang(q)}→{lang(p)}", []).append((q, p))
    return out


def measure(encoder, pairs: list[tuple[str, str]]) -> dict:
    result = {}
    for name, rows in sorted(directions(pairs).items()):
        passages = sorted({p for _, p in rows})
        row_of = {p: i for i, p in enumerate(passages)}
        gold_sets: dict[str, set[int]] = {}
        for q, p in rows:
            gold_sets.setdefault(q, set()).add(row_of[p])
        queries = sorted(gold_sets)
        sims = encoder.encode(queries, kind="query") @ encoder.encode(passages, kind="passage").T
        ranks = []
        for i, q in enumerate(queries):  # best-ranked of the query's own passages
            gold = max(sims[i, j] for j in gold_sets[q])
            ranks.append(int((sims[i] > gold).sum()) + 1)
        r = np.array(ranks)
        result[name] = {"queries": len(queries), "passages": len(passages), "r1": round(float((r == 1).mean()), 4),
                        "mrr10": round(float(np.where(r <= 10, 1.0 / r, 0.0).mean()), 4)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a model name or folder (default: the shipped default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = {"model": args.model or "default", "directions": measure(load_encoder(args.model), libreoffice_pairs(dev=True))}
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return
    for name, row in result["directions"].items():
        print(f"{name}: {row['queries']} queries over {row['passages']} passages, R@1 {row['r1']:.3f}, MRR@10 {row['mrr10']:.3f}")


if __name__ == "__main__":
    main()
