"""Cross-lingual evaluation on parallel dev data: the numbers every model change must move.

Per dev set of N English–Chinese pairs:

- **bitext accuracy**: is a sentence's own translation the nearest of the N sentences of the other
  language? Both sides in query mode (e5's advice for symmetric tasks).
- **retrieval** R@1/5/10 and MRR@10: query-mode sentence against the passage-mode pool of the
  other language — the asymmetric setting search uses.
- **language bias**: both sides of all pairs in ONE passage pool (2N, the query's own text left
  out); query with one side. How often is the translation in the top 10 / top 1 while every other
  same-language sentence competes? This is what a user of a mixed collection feels: with a biased
  encoder, same-language text crowds out the right answer in the other language.

A same-language check (`same_language`) guards against buying cross-lingual gains with
monolingual quality: the first sentence of a multi-sentence segment is the query, the rest of
the segment its target, among the rests of all segments in the same language.

All metrics are computed from vectors (pure numpy), so they are tested on hand-made vectors and
so a vector transform (e.g. language centering) can be measured without re-encoding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.config import xlsearch_home
from core.errors import InputError
from core.pairs import read_pairs
from core.sentences import split_sentences
from models.encoder import Encoder
from search.calibration import LanguageCalibration, sample_by_language

Transform = Callable[[np.ndarray, str, str], np.ndarray]  # (vectors, lang, kind) → vectors


@dataclass
class BitextResult:
    pairs: int
    en_to_zh: float
    zh_to_en: float


@dataclass
class PairVectors:
    """The four encodings of a pair set that every metric here needs."""

    en_query: np.ndarray
    en_passage: np.ndarray
    zh_query: np.ndarray
    zh_passage: np.ndarray

    @classmethod
    def encode(cls, encoder: Encoder, pairs: list[tuple[str, str]], batch_size: int = 64) -> PairVectors:
        """Encode, or load from the cache: re-scoring (balance, transforms) should not re-encode."""
        text = "\n".join(f"{e}\t{z}" for e, z in pairs).encode("utf-8")
        key = hashlib.sha256(encoder.fingerprint.encode() + text).hexdigest()[:24]
        cache = xlsearch_home() / "cache" / "eval" / f"{key}.npz"
        if cache.exists():
            with np.load(cache) as npz:
                return cls(**{name: npz[name] for name in npz.files})
        en, zh = [e for e, _ in pairs], [z for _, z in pairs]
        vecs = cls(
            encoder.encode(en, "query", batch_size), encoder.encode(en, "passage", batch_size),
            encoder.encode(zh, "query", batch_size), encoder.encode(zh, "passage", batch_size),
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **asdict(vecs))
        os.replace(tmp, cache)
        return vecs

    def transformed(self, transform: Transform | None) -> PairVectors:
        if transform is None:
            return self
        return PairVectors(
            transform(self.en_query, "en", "query"), transform(self.en_passage, "en", "passage"),
            transform(self.zh_query, "zh", "query"), transform(self.zh_passage, "zh", "passage"),
        )


def bitext_accuracy_from_vectors(en: np.ndarray, zh: np.ndarray) -> BitextResult:
    sims = en @ zh.T
    gold = np.arange(len(en))
    return BitextResult(
        pairs=len(en),
        en_to_zh=float((sims.argmax(axis=1) == gold).mean()),
        zh_to_en=float((sims.argmax(axis=0) == gold).mean()),
    )


def gold_ranks(sims: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """0-based rank of each row's gold column (ties count against the gold item)."""
    gold_scores = sims[np.arange(len(sims)), gold]
    return (sims > gold_scores[:, None]).sum(axis=1) + (sims == gold_scores[:, None]).sum(axis=1) - 1


def retrieval_metrics(ranks: np.ndarray) -> dict[str, float]:
    return {
        "r1": float((ranks < 1).mean()),
        "r5": float((ranks < 5).mean()),
        "r10": float((ranks < 10).mean()),
        "mrr10": float(np.where(ranks < 10, 1.0 / (ranks + 1), 0.0).mean()),
    }


def language_bias(queries: np.ndarray, same_side: np.ndarray, other_side: np.ndarray, balance: bool = False) -> dict[str, float]:
    """Query i against a pool of both sides; gold = other_side[i]; its own text is left out.

    With `balance`, scores are calibrated per language as search does (`search.calibration`).
    """
    n = len(queries)
    pool = np.vstack([other_side, same_side])
    sims = queries @ pool.T
    if balance:
        langs = ["other"] * n + ["same"] * n
        sims = LanguageCalibration(sample_by_language(pool, langs)).batch(queries, sims, langs)
    sims[np.arange(n), n + np.arange(n)] = -np.inf  # the query's own text is not a competitor
    ranks = gold_ranks(sims, np.arange(n))
    return {"top1": float((ranks < 1).mean()), "top10": float((ranks < 10).mean())}


@dataclass
class SetReport:
    set: str
    pairs: int
    bitext_en_zh: float
    bitext_zh_en: float
    mrr10_en_zh: float
    mrr10_zh_en: float
    r10_en_zh: float
    r10_zh_en: float
    bias_top10_en: float  # English queries: translation in top 10 of the mixed pool
    bias_top10_zh: float
    bias_top1_en: float
    bias_top1_zh: float

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def evaluate_pairs(name: str, vecs: PairVectors, balance: bool = False) -> SetReport:
    bitext = bitext_accuracy_from_vectors(vecs.en_query, vecs.zh_query)
    gold = np.arange(len(vecs.en_query))
    en_zh = retrieval_metrics(gold_ranks(vecs.en_query @ vecs.zh_passage.T, gold))
    zh_en = retrieval_metrics(gold_ranks(vecs.zh_query @ vecs.en_passage.T, gold))
    bias_en = language_bias(vecs.en_query, vecs.en_passage, vecs.zh_passage, balance)
    bias_zh = language_bias(vecs.zh_query, vecs.zh_passage, vecs.en_passage, balance)
    return SetReport(
        name, len(gold), bitext.en_to_zh, bitext.zh_to_en, en_zh["mrr10"], zh_en["mrr10"], en_zh["r10"], zh_en["r10"],
        bias_en["top10"], bias_zh["top10"], bias_en["top1"], bias_zh["top1"],
    )


def first_sentence_split(texts: list[str], min_rest_chars: int = 10) -> list[tuple[str, str]]:
    """(first sentence, rest) for texts of two or more sentences with a substantial rest."""
    out = []
    for text in texts:
        spans = split_sentences(text)
        if len(spans) < 2:
            continue
        first = text[spans[0][0] : spans[0][1]]
        rest = text[spans[1][0] : spans[-1][1]]
        if len(first) >= 4 and len(rest) >= min_rest_chars:
            out.append((first, rest))
    return out


def same_language(encoder: Encoder, texts: list[str], lang: str, transform: Transform | None = None, batch_size: int = 64) -> dict[str, float] | None:
    """MRR@10 / R@1 of first sentence → rest of its segment, within one language."""
    items = first_sentence_split(texts)
    if len(items) < 20:
        return None
    queries = encoder.encode([q for q, _ in items], "query", batch_size)
    targets = encoder.encode([t for _, t in items], "passage", batch_size)
    if transform is not None:
        queries, targets = transform(queries, lang, "query"), transform(targets, lang, "passage")
    metrics = retrieval_metrics(gold_ranks(queries @ targets.T, np.arange(len(items))))
    return {"items": len(items), "r1": metrics["r1"], "mrr10": metrics["mrr10"]}


def run_eval(
    encoder: Encoder, data_dir: Path, sets: list[str] | None = None, limit: int | None = None,
    transform: Transform | None = None, progress: bool = True, balance: bool = False,
) -> dict:
    """Every metric on every requested dev set; `sets=None` means all `*.tsv` in `data_dir`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such folder — pass --data DIR with english<TAB>chinese TSV dev files")
    names = sets or sorted(p.stem for p in data_dir.glob("*.tsv"))
    reports, en_texts, zh_texts = [], [], []
    for name in tqdm(names, desc="eval", unit="set", disable=not progress):
        pairs = read_pairs(data_dir / f"{name}.tsv", limit)
        vecs = PairVectors.encode(encoder, pairs).transformed(transform)
        reports.append(evaluate_pairs(name, vecs, balance).to_dict())
        en_texts += [e for e, _ in pairs]
        zh_texts += [z for _, z in pairs]
    same = {lang: same_language(encoder, texts, lang, transform) for lang, texts in (("en", en_texts), ("zh", zh_texts))}
    precision = getattr(encoder, "precision", "fp32")
    return {"model": encoder.name, "precision": precision, "balance": balance, "sets": reports, "same_language": same}


def format_table(result: dict) -> str:
    cols = [  # (key, title, width)
        ("bitext_en_zh", "bitext en→zh", 12), ("bitext_zh_en", "zh→en", 6),
        ("mrr10_en_zh", "MRR@10 en→zh", 12), ("mrr10_zh_en", "zh→en", 6),
        ("bias_top10_en", "bias@10 en-q", 12), ("bias_top10_zh", "zh-q", 6),
        ("bias_top1_en", "bias@1 en-q", 11), ("bias_top1_zh", "zh-q", 6),
    ]
    title = f"model: {result['model']} ({result.get('precision', 'fp32')})" + ("; language-balanced scores" if result.get("balance") else "")
    lines = [title, f"{'set':<18} {'pairs':>5} " + " ".join(f"{t:>{w}}" for _, t, w in cols)]
    for row in result["sets"]:
        lines.append(f"{row['set']:<18} {row['pairs']:>5} " + " ".join(f"{row[k]:>{w}.3f}" for k, _, w in cols))
    for lang, m in result["same_language"].items():
        if m:
            lines.append(f"same-language {lang}: first sentence → rest of segment, {m['items']} items: R@1 {m['r1']:.3f}, MRR@10 {m['mrr10']:.3f}")
    return "\n".join(lines)
