"""Lexical terms for the FTS5 index: one analyser for documents and queries alike.

Chinese has no spaces, so Han runs are segmented with jieba (search mode, which also emits the
shorter words inside long ones); Latin words, numbers and identifiers are lower-cased. The
terms are stored space-separated, and SQLite's default tokenizer splits them on spaces and
punctuation, so `apt-get` or `os.path` in a query match as adjacent terms (a phrase).

For hybrid search only *exact* terms count: identifiers, numbers, CamelCase and ALLCAPS names,
and words in the other script than the query's (`sudo` in a Chinese query). Those read the same
in both languages' documents, so matching them does not favour the query's language; ordinary
words do, and measured on dev data they cost cross-lingual hits dearly
(benchmarks/search_modes.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .chinese_words import cut_for_search

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[A-Za-z0-9_]+(?:[.\-:/][A-Za-z0-9_]+)*")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

def terms(text: str) -> list[str]:
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        token = m.group()
        out.extend(cut_for_search(token) if _HAN.match(token) else [token.lower()])
    return out


def fts_text(text: str) -> str:
    return " ".join(terms(text))


_EXACT = re.compile(r"[0-9_.:/\-]|[a-z][A-Z]|^[A-Z]{2,}")


def exact_terms(query: str) -> list[str]:
    """Terms that name something the same way in either language (see the module doc)."""
    from .language import detect_language

    chinese_query = detect_language(query) == "zh"
    out: list[str] = []
    for m in _TOKEN.finditer(query):
        token = m.group()
        if _HAN.match(token):
            if not chinese_query:
                out.extend(cut_for_search(token))
        elif chinese_query or _EXACT.search(token):
            out.append(token.lower())
    return out


# Words nearly every page holds: matching them costs a bm25 pass over most of the index and
# tells pages apart by length only. Dropped from full-text queries (`drop_common`), kept in the
# index (a phrase query still finds them).
COMMON_WORDS = frozenset(
    "a an the of to in on at for from by with and or not no is are was were be been it its this that these "
    "those as if then than do does how what which who when where why can you your i we our my me "
    "的 了 和 与 及 或 是 在 有 为 对 中 上 下 把 被 就 都 也 而 之 这 那 一个 个 我 你 他 它 我们 如何 怎么 什么 吗 呢".split()
)


def query_terms(text: str, exact_only: bool = False, drop_common: bool = False) -> list[str]:
    """The query's distinct terms, in order (only its exact ones with `exact_only`)."""
    unique = list(dict.fromkeys(exact_terms(text) if exact_only else terms(text)))
    return [t for t in unique if t not in COMMON_WORDS] if drop_common else unique


def fts_match(words: Iterable[str]) -> str | None:
    """An FTS5 MATCH expression: any of these terms, each quoted (so no syntax leaks)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in words) or None


def fts_query(text: str, exact_only: bool = False, drop_common: bool = False) -> str | None:
    """An FTS5 MATCH expression for the query's terms (`query_terms`, `fts_match`)."""
    return fts_match(query_terms(text, exact_only, drop_common))


_SEPARATORS = re.compile(r"[\W_]+")


def fts_tokens(term: str) -> list[str]:
    """The tokens FTS5's default tokenizer (unicode61) stores for one of our terms: `apt-get` is
    the phrase `apt` `get`. (Our Latin terms are ASCII, so its diacritic folding never applies.)"""
    return [t for t in _SEPARATORS.split(term) if t]
