"""Cross-lingual evaluation: bitext retrieval accuracy, both directions.

Bitext accuracy: embed both sides of N pairs; for each English sentence, is its own translation
the nearest of the N Chinese ones (and the reverse)? It measures whether a translation is
closer than every other sentence of the other language — the minimum a cross-lingual search
needs. Both sides use the same prompt (e5's advice for symmetric tasks is "query: ").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xlsearch.encoder import Encoder


@dataclass
class BitextResult:
    pairs: int
    en_to_zh: float
    zh_to_en: float

    @property
    def mean(self) -> float:
        return (self.en_to_zh + self.zh_to_en) / 2


def bitext_accuracy(encoder: Encoder, pairs: list[tuple[str, str]], kind: str = "query", batch_size: int = 64) -> BitextResult:
    en = encoder.encode([e for e, _ in pairs], kind, batch_size)
    zh = encoder.encode([z for _, z in pairs], kind, batch_size)
    return bitext_accuracy_from_vectors(en, zh)


def bitext_accuracy_from_vectors(en: np.ndarray, zh: np.ndarray) -> BitextResult:
    sims = en @ zh.T
    gold = np.arange(len(en))
    return BitextResult(
        pairs=len(en),
        en_to_zh=float((sims.argmax(axis=1) == gold).mean()),
        zh_to_en=float((sims.argmax(axis=0) == gold).mean()),
    )
