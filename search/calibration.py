"""Language-balanced scores: how unusual is a score *for documents in that language*?

With a multilingual encoder, a query scores every same-language text a little higher than any
text in the other language, relevant or not. Comparing raw scores across languages therefore
buries the right answer when it is in the other language. We z-score each candidate against
the query's similarity to a fixed random sample of the collection's chunks in the candidate's
language: `(score − mean_L) / std_L`. That removes the per-language offset (and spread) for
this query without any training data, for any model, at the cost of a few hundred dot
products per query.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import numpy as np

MIN_SAMPLE = 16  # below this a language's background is too noisy; it shares the pooled one
SAMPLE_PER_LANGUAGE = 512  # chunks per language (a fixed pseudo-random pick) standing for its background


class LanguageCalibration:
    def __init__(self, samples: dict[str, np.ndarray]):
        self.samples = {lang: v for lang, v in samples.items() if len(v) >= MIN_SAMPLE}
        pooled = [v for v in samples.values() if len(v)]
        self.pooled = np.vstack(pooled) if pooled else None

    def __call__(self, query: np.ndarray, scores: np.ndarray, langs: Sequence[str]) -> np.ndarray:
        """Calibrated scores of one query's candidates."""
        return self.batch(np.asarray(query)[None, :], np.asarray(scores, np.float32)[None, :], langs)[0]

    def batch(self, queries: np.ndarray, scores: np.ndarray, langs: Sequence[str]) -> np.ndarray:
        """(n_queries, n_candidates) scores → calibrated, candidates' languages in `langs`."""
        scores = np.asarray(scores, np.float32)
        if self.pooled is None:
            return scores
        out = np.empty_like(scores)
        langs = np.asarray(langs)
        for lang in np.unique(langs):
            background = queries @ self.samples.get(str(lang), self.pooled).T
            mean, std = background.mean(axis=1, keepdims=True), background.std(axis=1, keepdims=True)
            cols = langs == lang
            out[:, cols] = (scores[:, cols] - mean) / np.where(std > 0, std, 1.0)
        return out


def sample_by_language(vectors: np.ndarray, langs: Sequence[str], per_language: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed random sample of vectors for each language."""
    rng = np.random.default_rng(seed)
    langs = np.asarray(langs)
    out = {}
    for lang in np.unique(langs):
        idx = np.flatnonzero(langs == lang)
        out[str(lang)] = vectors[rng.permutation(idx)[:per_language]]
    return out


_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # store -> (generation, calibration)
_cache_lock = threading.Lock()


def language_calibration(store) -> LanguageCalibration:
    """The calibration for an opened index's current generation, sampled once per generation.

    Asks the document store for a fixed sample of each language's vectors (storage knows how to
    pick them cheaply; the size and the statistics are this module's business).
    """
    documents = store.documents
    generation = documents.generation
    with _cache_lock:
        cached = _cache.get(documents)
    if cached is not None and cached[0] == generation:
        return cached[1]
    calibration = LanguageCalibration(documents.vector_sample(SAMPLE_PER_LANGUAGE))
    with _cache_lock:
        _cache[documents] = (generation, calibration)
    return calibration
