"""Sentence → the rest of its paragraph, on dev data: a check for long passages that we may tune on.

The dev sets are mostly sentences, so they do not see a model lose its grip on paragraphs — the
held-out XQuAD check (question → Wikipedia paragraph) did, after training on help pages, when no
dev number moved. This is the inverse cloze task (Lee et al. 2019) on the dev splits' paragraphs:
one sentence, drawn with a seed, is cut out of each paragraph and searched for among all the cut
paragraphs, within each language (`same_en`, `same_zh`) and across (`cross_en_zh`, `cross_zh_en`,
over the paragraphs whose two sides have as many sentences, so the cut is the same sentence).

Paragraphs: every dev pair of the sources below whose English side has ≥ 200 characters and two
or more sentences in both languages (news and medical text are out of the training domains).

    python benchmarks/cloze_retrieval.py --model default --json
    python benchmarks/cloze_retrieval.py --search [--words 0,4] --json

`--search` asks the whole search pipeline instead of raw embeddings: every cut paragraph, in both
languages, is a file of one mixed index (built once under --work), each cut sentence a query
(hybrid, balanced, k=10), and we read where its own paragraph ranks (`own`, same language) and
its translation (`twin`, aligned paragraphs only) — long queries, where the same-language
reorder's choice of words (`SearchConfig.same_language_words`, one run per `--words` value)
matters most.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.heldout import ranks, summary  # noqa: E402
from core.pairs import default_dev_dir, read_pairs  # noqa: E402
from models.loading import load_encoder  # noqa: E402

SOURCES = ("python_docs", "django_docs", "libreoffice_help", "news_wmt19", "medical_tico19")
MIN_CHARS = 200
_EN_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")
_ZH_END = re.compile(r"(?<=[。！？])")


def sentences(text: str, lang: str) -> list[str]:
    parts = (_EN_END if lang == "en" else _ZH_END).split(text)
    return [p.strip() for p in parts if len(p.strip()) >= (20 if lang == "en" else 8)]


def cloze_items(pairs: list[tuple[str, str]], seed: int = 0) -> list[dict]:
    """One item per paragraph: the cut sentence and what is left, per language; `aligned` when
    both sides had as many sentences (then the cut is the same sentence in both)."""
    rng = random.Random(seed)
    items = []
    for en, zh in pairs:
        if len(en) < MIN_CHARS:
            continue
        split = {"en": sentences(en, "en"), "zh": sentences(zh, "zh")}
        if min(len(s) for s in split.values()) < 2:
            continue
        aligned = len(split["en"]) == len(split["zh"])
        cut = {lang: rng.randrange(len(s)) for lang, s in split.items()}
        if aligned:
            cut["zh"] = cut["en"]
        items.append({"aligned": aligned, **{lang: (s[cut[lang]], " ".join(s[:cut[lang]] + s[cut[lang] + 1:])) for lang, s in split.items()}})
    return items


def cloze(encoder, items: list[dict]) -> dict:
    vec = {}
    for lang in ("en", "zh"):
        vec[lang, "q"] = encoder.encode([it[lang][0] for it in items], kind="query")
        vec[lang, "p"] = encoder.encode([it[lang][1] for it in items], kind="passage")
    gold = np.arange(len(items))
    out: dict = {"paragraphs": len(items)}
    for lang in ("en", "zh"):
        out[f"same_{lang}"] = summary(ranks(vec[lang, "q"], vec[lang, "p"], gold))
    both = np.array([it["aligned"] for it in items])
    idx = np.flatnonzero(both)
    for q, p in (("en", "zh"), ("zh", "en")):
        out[f"cross_{q}_{p}"] = summary(ranks(vec[q, "q"][idx], vec[p, "p"][idx], np.arange(len(idx))))
    return out


def search_cloze(items: list[dict], model: str | None, work: Path, word_counts: list[int]) -> list[dict]:
    from benchmarks.page_retrieval import rank_of
    from core.config import IndexConfig, SearchConfig
    from xlsearch import Index

    folder = work / "paragraphs"
    if not folder.exists():
        tmp = work / "paragraphs.tmp"
        for lang in ("en", "zh"):
            (tmp / lang).mkdir(parents=True, exist_ok=True)
            for i, it in enumerate(items):
                (tmp / lang / f"p{i:04d}.txt").write_text(it[lang][1] + "\n", encoding="utf-8")
        tmp.rename(folder)
    db = work / f"index-{model or 'default'}".replace("/", "_")
    with Index(db, model, create=True) as index:
        index.add([folder], IndexConfig())
    runs = []
    for words in word_counts:
        with Index(db, model, search_config=SearchConfig(same_language_words=words)) as index:
            run: dict = {"same_language_words": words}
            for lang in ("en", "zh"):
                other = "zh" if lang == "en" else "en"
                own, twin = [], []
                for i, it in enumerate(items):
                    hits = index.search(it[lang][0], k=10)
                    own.append(rank_of(hits, f"/{lang}/p{i:04d}.txt"))
                    if it["aligned"]:
                        twin.append(rank_of(hits, f"/{other}/p{i:04d}.txt"))
                n, m = max(1, len(own)), max(1, len(twin))
                run[lang] = {"queries": len(own), "own@1": sum(r == 1 for r in own) / n, "own_mrr": sum(1 / r for r in own if r) / n,
                             "twin@10": sum(r is not None for r in twin) / m, "twin_mrr": sum(1 / r for r in twin if r) / m}
            runs.append(run)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a model name or folder (default: the shipped default)")
    ap.add_argument("--dev-dir", type=Path, default=None, help="folder of dev TSVs (default: shared/data/parallel/dev)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--search", action="store_true", help="through the search pipeline (see above), not raw embeddings")
    ap.add_argument("--words", default="4", help="with --search: comma-separated SearchConfig.same_language_words values")
    ap.add_argument("--work", type=Path, default=ROOT / ".cache" / "cloze", help="with --search: where the index is built")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev_dir = args.dev_dir or default_dev_dir()
    pairs = [p for name in SOURCES for p in read_pairs(dev_dir / f"{name}.tsv")]
    items = cloze_items(pairs, args.seed)
    if args.search:
        runs = search_cloze(items, args.model, args.work / f"seed{args.seed}", [int(n) for n in args.words.split(",")])
        result = {"model": args.model or "default", "sources": list(SOURCES), "paragraphs": len(items), "runs": runs}
        if args.json:
            print(json.dumps(result, indent=1))
        for run in runs if not args.json else []:
            print(f"words {run['same_language_words']} | " + " | ".join(
                f"{lang}-q own@1 {run[lang]['own@1']:.3f} mrr {run[lang]['own_mrr']:.3f} twin@10 {run[lang]['twin@10']:.3f}" for lang in ("en", "zh")))
        return
    encoder = load_encoder(args.model)
    result = {"model": args.model or "default", "folder": encoder.name, "sources": list(SOURCES), **cloze(encoder, items)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['paragraphs']} paragraphs | same R@1 en {result['same_en']['r1']:.3f} zh {result['same_zh']['r1']:.3f} | "
          f"cross R@1 en→zh {result['cross_en_zh']['r1']:.3f} zh→en {result['cross_zh_en']['r1']:.3f}")


if __name__ == "__main__":
    main()
