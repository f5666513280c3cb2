"""Held-out embedding checks on public test sets no recipe ever reads: XQuAD (question → paragraph)
and Tatoeba's English–Mandarin test (sentence → translation). Raw embeddings, no index.

    git clone https://github.com/google-deepmind/xquad            # CC BY-SA 4.0
    git clone https://github.com/facebookresearch/LASER            # data/tatoeba/v1 (CC BY 2.0 FR)
    python benchmarks/heldout.py --xquad xquad --tatoeba LASER/data/tatoeba/v1 --model default --json

The data is not shipped: these are benchmark *test* sets, kept out of the repository so that no
recipe can train on them. Report them for a model chosen on dev data; never choose by them.

- `xquad same` — within one language, each of the 1,190 questions searches the 240 paragraphs of
  its language: R@1, R@5, MRR@10 (our users' most common search).
- `xquad cross` — English questions over the Chinese paragraphs and the reverse.
- `xquad split` — every article exists in one language only: even-numbered articles in English and
  odd ones in Chinese, and then the other way round (both splits averaged, so every article counts
  once per language). Questions of both languages search the 240 mixed paragraphs; `cross R@5` is
  over the questions whose answer is in the other language, `same R@1` over the rest.
- `tatoeba` — each of 1,000 sentences finds its translation among the other language's (accuracy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.loading import load_encoder  # noqa: E402


def read_xquad(path: Path) -> tuple[list[str], list[int], list[tuple[str, int]]]:
    """(paragraphs, article of each paragraph, (question, its paragraph) pairs) of one language."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs, articles, questions = [], [], []
    for a, article in enumerate(data):
        for par in article["paragraphs"]:
            questions += [(qa["question"], len(paragraphs)) for qa in par["qas"]]
            paragraphs.append(par["context"])
            articles.append(a)
    return paragraphs, articles, questions


def ranks(queries: np.ndarray, pool: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """1-based rank of each query's gold row in the pool, by cosine (a tie with the gold counts in its favour)."""
    sims = queries @ pool.T
    return (sims > sims[np.arange(len(gold)), gold][:, None]).sum(1) + 1


def summary(r: np.ndarray) -> dict:
    return {"n": int(len(r)), "r1": round(float((r == 1).mean()), 4), "r5": round(float((r <= 5).mean()), 4),
            "mrr10": round(float(np.where(r <= 10, 1.0 / r, 0.0).mean()), 4)}


def xquad(encoder, folder: Path) -> dict:
    sides = {lang: read_xquad(folder / f"xquad.{lang}.json") for lang in ("en", "zh")}
    assert sides["en"][1] == sides["zh"][1], "XQuAD's languages are parallel, paragraph by paragraph"
    articles = np.array(sides["en"][1])
    vec = {}
    for lang, (paragraphs, _, questions) in sides.items():
        vec[lang, "p"] = encoder.encode(paragraphs, kind="passage")
        vec[lang, "q"] = encoder.encode([q for q, _ in questions], kind="query")
        vec[lang, "gold"] = np.array([g for _, g in questions])
    out: dict = {"paragraphs": int(len(articles)), "questions": int(len(vec["en", "gold"]))}
    for lang in ("en", "zh"):
        out[f"same_{lang}"] = summary(ranks(vec[lang, "q"], vec[lang, "p"], vec[lang, "gold"]))
    for q, p in (("en", "zh"), ("zh", "en")):
        out[f"cross_{q}_{p}"] = summary(ranks(vec[q, "q"], vec[p, "p"], vec[q, "gold"]))
    split: dict[str, list[np.ndarray]] = {"cross_en": [], "cross_zh": [], "same_en": [], "same_zh": []}
    for parity in (0, 1):
        in_en = articles % 2 == parity  # which paragraphs the collection has in English
        pool = np.where(in_en[:, None], vec["en", "p"], vec["zh", "p"])
        for lang in ("en", "zh"):
            gold = vec[lang, "gold"]
            r = ranks(vec[lang, "q"], pool, gold)
            own_language = in_en[gold] if lang == "en" else ~in_en[gold]
            split[f"cross_{lang}"].append(r[~own_language])
            split[f"same_{lang}"].append(r[own_language])
    out["split"] = {k: summary(np.concatenate(v)) for k, v in split.items()}
    return out


def tatoeba(encoder, folder: Path) -> dict:
    en = (folder / "tatoeba.cmn-eng.eng").read_text(encoding="utf-8").splitlines()
    zh = (folder / "tatoeba.cmn-eng.cmn").read_text(encoding="utf-8").splitlines()
    e, z = encoder.encode(en, kind="query"), encoder.encode(zh, kind="query")
    gold = np.arange(len(en))
    return {"pairs": len(en), "en_zh": summary(ranks(e, z, gold))["r1"], "zh_en": summary(ranks(z, e, gold))["r1"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xquad", type=Path, help="folder with xquad.en.json and xquad.zh.json")
    ap.add_argument("--tatoeba", type=Path, help="folder with tatoeba.cmn-eng.eng and .cmn")
    ap.add_argument("--model", default=None, help="a model name or folder (default: the shipped default)")
    ap.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.xquad and not args.tatoeba:
        ap.error("give --xquad and/or --tatoeba")
    encoder = load_encoder(args.model, runtime=args.runtime)
    result: dict = {"model": args.model or "default", "folder": encoder.name}
    if args.xquad:
        result["xquad"] = xquad(encoder, args.xquad)
    if args.tatoeba:
        result["tatoeba"] = tatoeba(encoder, args.tatoeba)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    x = result.get("xquad")
    if x:
        print(f"xquad same R@1 en {x['same_en']['r1']:.3f} zh {x['same_zh']['r1']:.3f} | cross R@1 en→zh {x['cross_en_zh']['r1']:.3f} "
              f"zh→en {x['cross_zh_en']['r1']:.3f} | split cross R@5 en-q {x['split']['cross_en']['r5']:.3f} zh-q {x['split']['cross_zh']['r5']:.3f}")
    t = result.get("tatoeba")
    if t:
        print(f"tatoeba en→zh {t['en_zh']:.3f} zh→en {t['zh_en']:.3f}")


if __name__ == "__main__":
    main()
