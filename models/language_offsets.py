"""Which language-centering mean a text gets, decided from its token ids — in numpy, no torch.

Shared by the PyTorch module (`models.centering.LanguageCentering`) and the ONNX runtime
(`models.onnx_encoder`), so both runtimes pick the same mean for the same tokens. A text's
language comes from its content tokens (Han characters against Latin letters, a Han character
weighing four letters, like `core.language`), its mode from the prompt tokens that lead it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LANGS = ("en", "zh")
KINDS = ("query", "passage")
CONFIG_NAME = "centering.json"
WEIGHTS_NAME = "centering.safetensors"


def language_and_kind(ids: np.ndarray, mask: np.ndarray, han: np.ndarray, latin: np.ndarray,
                      prompt_ids: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a padded batch: language (0 en, 1 zh, 2 other) and mode (0 query, 1 passage)."""
    n, width = ids.shape
    kind = np.ones(n, dtype=np.int64)  # passage unless the query prompt leads
    skip = np.ones(n, dtype=np.int64)  # leading tokens not counted: <s> (+ prompt)
    for k, prompt in ((0, prompt_ids.get("query") or []), (1, prompt_ids.get("passage") or [])):
        if prompt and width > len(prompt):
            hit = (ids[:, 1 : 1 + len(prompt)] == np.asarray(prompt)).all(axis=1)
            kind = np.where(hit, k, kind)
            skip = np.where(hit, 1 + len(prompt), skip)
    counted = mask * (np.arange(width)[None, :] >= skip[:, None])
    han_count = (han[ids].astype(np.int64) * counted).sum(axis=1)
    latin_count = (latin[ids].astype(np.int64) * counted).sum(axis=1)
    lang = np.where((han_count > 0) & (han_count >= latin_count / 4), 1, np.where(latin_count > 0, 0, 2))
    return lang, kind


class LanguageOffsets:
    """A centering module's tables, read from its folder, applied to pooled numpy vectors."""

    def __init__(self, means: np.ndarray, prompt_ids: dict[str, list[int]], han: np.ndarray, latin: np.ndarray):
        self.means, self.prompt_ids, self.han, self.latin = means, prompt_ids, han, latin

    @classmethod
    def load(cls, folder: Path) -> LanguageOffsets:
        from safetensors.numpy import load_file

        config = json.loads((Path(folder) / CONFIG_NAME).read_text(encoding="utf-8"))
        t = load_file(str(Path(folder) / WEIGHTS_NAME))
        return cls(t["means"].astype(np.float32), config["prompt_ids"], t["han"], t["latin"])

    def __call__(self, emb: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        lang, kind = language_and_kind(ids, mask, self.han, self.latin, self.prompt_ids)
        return emb - self.means[lang, kind]
