"""Dense vs lexical vs hybrid, balanced vs not, through the real search pipeline, on dev data.

    python benchmarks/search_modes.py [--sets python_docs,django_docs,news_wmt19] [--limit 500] [--json]

For each dev set, both sides of every pair are indexed as separate documents in one mixed
collection (JSONL through `xlsearch index`). Three query tasks:

- **identifier**: pairs whose English side holds a code identifier, path or number (e.g.
  `os.path.join`, `--prune`, `3.13`); the query is that token alone, and either side of the
  pair is a right answer. Lexical search should shine here.
- **en→zh** / **zh→en**: the whole sentence in one language is the query, its translation the
  answer; the query's own document is removed from the ranking. This is where lexical matching
  could hurt, by pulling same-language documents up.

Reports hit@1 and MRR@10 per task and mode. Dev data only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from cli import cli  # noqa: E402
from core.pairs import default_dev_dir, read_pairs  # noqa: E402
from xlsearch import Index  # noqa: E402

IDENTIFIER = re.compile(r"(?<![\w.-])(?:--?[a-z][\w-]+|\w+(?:[._/]\w+)+|\w*[a-z][A-Z]\w*|\d+(?:\.\d+)+|\w+\(\))(?![\w-])")


def identifier_of(text: str) -> str | None:
    found = [m.group() for m in IDENTIFIER.finditer(text) if len(m.group()) >= 4]
    return max(found, key=len) if found else None


def rank_of(hits, wanted: set[str], skip: str | None = None) -> int | None:
    rank = 0
    for h in hits:
        if h.key == skip:
            continue
        rank += 1
        if h.key in wanted:
            return rank
    return None


def summarize(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    return {
        "queries": len(ranks),
        "hit@1": round(sum(r == 1 for r in ranks) / n, 4),
        "mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / n, 4),
    }


def run_set(name: str, pairs: list[tuple[str, str]], model: str | None, workdir: Path) -> dict:
    docs = workdir / f"{name}.jsonl"
    with docs.open("w", encoding="utf-8") as f:
        for i, (en, zh) in enumerate(pairs):
            f.write(json.dumps({"id": f"{i}-en", "text": en}, ensure_ascii=False) + "\n")
            f.write(json.dumps({"id": f"{i}-zh", "text": zh}, ensure_ascii=False) + "\n")
    db = workdir / f"{name}-idx"
    args = ["-q", "index", str(docs), "--db", str(db), "--id-field", "id"] + (["--model", model] if model else [])
    result = CliRunner().invoke(cli, args)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    tasks: dict[str, list[tuple[str, set[str], str | None]]] = {"identifier": [], "en→zh": [], "zh→en": []}
    for i, (en, zh) in enumerate(pairs):
        token = identifier_of(en)
        if token:
            tasks["identifier"].append((token, {f"{i}-en", f"{i}-zh"}, None))
        tasks["en→zh"].append((en, {f"{i}-zh"}, f"{i}-en"))
        tasks["zh→en"].append((zh, {f"{i}-en"}, f"{i}-zh"))
    variants = {
        "dense": {"mode": "dense", "balance": False},
        "dense+balance": {"mode": "dense", "balance": True},
        "lexical": {"mode": "lexical", "balance": False},
        "hybrid+balance": {"mode": "hybrid", "balance": True},
    }
    out: dict = {"set": name, "pairs": len(pairs), "tasks": {}}
    with Index(db, model) as index:
        for task, queries in tasks.items():
            out["tasks"][task] = {}
            for variant, options in variants.items():
                ranks = [rank_of(index.search(q, k=11, **options), wanted, skip) for q, wanted, skip in queries]
                out["tasks"][task][variant] = summarize(ranks)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="python_docs,django_docs,news_wmt19")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", type=Path, default=default_dev_dir())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            results.append(run_set(name, read_pairs(args.data / f"{name}.tsv", args.limit), args.model, Path(tmp)))
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    for r in results:
        print(f"{r['set']} ({r['pairs']} pairs, both sides indexed)")
        for task, variants in r["tasks"].items():
            cells = "  ".join(f"{v}: {m['hit@1']:.3f}/{m['mrr@10']:.3f}" for v, m in variants.items())
            print(f"  {task:<10} n={next(iter(variants.values()))['queries']:<4} hit@1/MRR@10  {cells}")


if __name__ == "__main__":
    main()
