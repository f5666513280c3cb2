"""Sentence boundaries in English and Chinese text, as character spans.

Sentences end at 。！？； (and their closing quotes/brackets), at English . ! ? ; followed by
space, and at line breaks. Used to cut chunks (indexer), pick snippets and summary sentences
(search) and build evaluation passages (training), so all three agree on what a sentence is.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"""(?:[。！？；]+|[.!?;]+(?=\s)|\n)[”’」』）)\]"']*""")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed, empty ones dropped."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out
