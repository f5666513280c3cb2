"""Cut a document into passages that fit the encoder, on sentence boundaries of both languages.

Sentences end at 。！？； (and their closing quotes/brackets), at English . ! ? ; followed by
space, and at line breaks. Sentences are packed greedily up to a budget measured with the
model's own tokenizer (Chinese and English cost very different numbers of tokens per
character, so characters are no measure). Each passage repeats the previous one's last
sentences up to a small overlap, so a fact split across a boundary is still found. A sentence
longer than the budget is cut at token boundaries. Every chunk keeps its character offsets into
the document, for snippets and the document view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.sentences import split_sentences


class Tokenizer(Protocol):
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...
    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    n_tokens: int


def chunk_text(text: str, tokenizer: Tokenizer, max_tokens: int = 256, overlap_tokens: int = 32) -> list[Span]:
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    sentences = split_sentences(text)
    counts = tokenizer.count_tokens([text[s:e] for s, e in sentences])
    units: list[Span] = []
    for (s, e), n in zip(sentences, counts):
        units.extend(_cut_long(text, s, e, n, tokenizer, max_tokens) if n > max_tokens else [Span(s, e, n)])
    chunks: list[Span] = []
    current: list[Span] = []
    for unit in units:
        if current and sum(u.n_tokens for u in current) + unit.n_tokens > max_tokens:
            chunks.append(_join(current))
            current = _overlap(current, overlap_tokens, max_tokens - unit.n_tokens)
        current.append(unit)
    if current:
        chunks.append(_join(current))
    return chunks


def _cut_long(text: str, s: int, e: int, n: int, tokenizer: Tokenizer, max_tokens: int) -> list[Span]:
    spans = tokenizer.token_spans(text[s:e])
    pieces = []
    for i in range(0, len(spans), max_tokens):
        group = spans[i : i + max_tokens]
        start = s + group[0][0]
        end = s + (group[-1][1] if i + max_tokens < len(spans) else e - s)
        pieces.append(Span(start, end, len(group)))
    return pieces or [Span(s, e, n)]


def _overlap(previous: list[Span], overlap_tokens: int, room: int) -> list[Span]:
    """The trailing units of the last chunk that fit in the overlap (and leave room)."""
    kept: list[Span] = []
    total = 0
    for unit in reversed(previous[1:]):  # never repeat a whole chunk
        if total + unit.n_tokens > min(overlap_tokens, room):
            break
        kept.insert(0, unit)
        total += unit.n_tokens
    return kept


def _join(units: list[Span]) -> Span:
    return Span(units[0].start, units[-1].end, sum(u.n_tokens for u in units))
