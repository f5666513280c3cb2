"""Snippets: the sentence of a hit that best shows why it matched, with the query terms marked.

A same-language hit shows the sentence holding most query terms. A cross-lingual hit holds none
of them; then the sentence closest in meaning to the query is shown and marked whole (scored by
the caller with the encoder, since only it knows meanings).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.sentences import split_sentences
from core.terms import terms

SNIPPET_CHARS = 280
MAX_SENTENCES = 8  # candidate sentences per hit for the semantic pick


@dataclass
class Snippet:
    text: str
    marks: list[tuple[int, int]]  # [start, end) spans of `text` to highlight


# Function words are not worth marking (bm25 already gives them no weight in ranking).
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its me my not of on or so that the "
    "their them then there these this to was what when where which who why will with you your".split()
)


@functools.lru_cache(maxsize=256)  # one query's ten hits ask ten times (a jieba cut each)
def highlight_terms(query: str) -> tuple[str, ...]:
    words = [t for t in terms(query) if (len(t) >= 2 and t not in STOPWORDS) or not t.isascii()]
    return tuple(sorted(set(words), key=len, reverse=True))  # longest first, so "软件包" wins over "软件"


def candidate_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)][:MAX_SENTENCES]


# [A-Za-z0-9_] as IGNORECASE reads it (it folds İ ı ſ K into the class), spelt out: the word
# alone is matched case-insensitively, and compiling a case-folded class is what made a new
# word's pattern cost ~0.28 ms (a search compiles several; now ~0.05 ms each).
_WORD_CHAR = "[A-Za-z0-9_\u0130\u0131\u017f\u212a]"


@functools.lru_cache(maxsize=4096)  # re's own cache is smaller and slower to consult
def _pattern(word: str) -> re.Pattern:
    """Latin words match whole words only ("the" not in "other"); Chinese words anywhere."""
    escaped = re.escape(word)
    if word.isascii():
        return re.compile(rf"(?<!{_WORD_CHAR})(?i:{escaped})(?!{_WORD_CHAR})")
    return re.compile(escaped, re.IGNORECASE)


def term_hits(sentence: str, words: Sequence[str]) -> int:
    return sum(len(_pattern(w).findall(sentence)) for w in words)


def make_snippet(text: str, query: str, sentence_scores: Sequence[float] | None = None, width: int = SNIPPET_CHARS) -> Snippet:
    """Snippet of `text` centred on its best sentence.

    `sentence_scores` (one per `candidate_sentences(text)`, higher = closer in meaning) decides
    when no sentence holds a query term.
    """
    words = highlight_terms(query)
    sentences = [" ".join(text[s:e].split()) for s, e in split_sentences(text)] or [" ".join(text.split())]
    counts = [term_hits(s, words) for s in sentences]
    semantic = None
    if max(counts) > 0:
        best = max(range(len(sentences)), key=lambda i: counts[i])
    elif sentence_scores:
        best = semantic = max(range(min(len(sentence_scores), len(sentences))), key=lambda i: sentence_scores[i])
    else:
        best = 0
    start_sentence = best
    if best > 0 and len(sentences[best]) < width // 2:  # a little context before a short sentence
        start_sentence = best - 1
    snippet = " ".join(sentences[start_sentence:])
    prefix = "…" if start_sentence > 0 else ""
    if len(snippet) > width:
        snippet = snippet[:width].rstrip() + "…"
    snippet = prefix + snippet
    if semantic is not None:
        at = snippet.find(sentences[semantic][: width // 2])
        marks = [(at, min(len(snippet), at + len(sentences[semantic])))] if at >= 0 else []
    else:
        marks = _term_marks(snippet, words)
    return Snippet(snippet, marks)


def _term_marks(snippet: str, words: Sequence[str]) -> list[tuple[int, int]]:
    taken = [False] * len(snippet)
    marks = []
    for w in words:  # longest first: a shorter word never splits a longer match
        for m in _pattern(w).finditer(snippet):
            if not any(taken[m.start() : m.end()]):
                marks.append((m.start(), m.end()))
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
    return sorted(marks)


def segments(text: str, marks: Sequence[Sequence[int]]) -> list[tuple[str, bool]]:
    """(piece, marked) pairs covering `text`, for templates that escape each piece."""
    out, pos = [], 0
    for start, end in sorted(marks):
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out
