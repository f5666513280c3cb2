"""Dense search over the store: embed the query, take the nearest chunks, one hit per document.

FAISS ranks chunks; a document with several matching chunks should appear once, under its best
chunk, so we over-fetch chunks and group. A language filter is applied after the vector search
(FAISS knows nothing of languages), widening the fetch until enough hits survive.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from xlsearch.encoder import Encoder
from xlsearch.errors import InputError
from xlsearch.store import Store

MAX_QUERY_CHARS = 2000
MAX_K = 1000
LANG_FILTERS = ("any", "en", "zh", "other")
SNIPPET_CHARS = 280


@dataclass
class Hit:
    rank: int
    score: float
    doc_id: int
    chunk_id: int
    lang: str
    title: str
    path: str
    key: str
    snippet: str
    start: int
    end: int
    more_chunks: int  # other matching chunks of the same document among the results

    def to_dict(self) -> dict:
        return asdict(self)


def validate_query(query: str, k: int, lang: str) -> str:
    query = " ".join(query.split())
    if not query:
        raise InputError("empty query — type some words to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    if not 1 <= k <= MAX_K:
        raise InputError(f"-k must be between 1 and {MAX_K}, not {k}")
    if lang not in LANG_FILTERS:
        raise InputError(f"--lang must be one of {', '.join(LANG_FILTERS)}, not {lang!r}")
    return query


def search(store: Store, encoder: Encoder, query: str, k: int = 10, lang: str = "any") -> list[Hit]:
    query = validate_query(query, k, lang)
    qvec = encoder.encode([query], "query")[0]
    total = store.vector_index().ntotal
    fetch = min(total, k * 10 + 20)
    while True:
        best: dict[int, tuple[float, dict]] = {}
        matches: dict[int, int] = {}
        found = store.search_vectors(qvec, fetch)
        rows = store.chunk_rows([cid for cid, _ in found])
        for chunk_id, score in found:
            row = rows.get(chunk_id)  # None: deleted by an index run still in progress
            if row is None or (lang != "any" and row["lang"] != lang):
                continue
            doc = row["doc_id"]
            matches[doc] = matches.get(doc, 0) + 1
            if doc not in best:
                best[doc] = (score, row)
        if len(best) >= k or fetch >= total:
            break
        fetch = min(total, fetch * 4)
    ranked = sorted(best.values(), key=lambda sr: -sr[0])[:k]
    return [
        Hit(
            rank=i + 1, score=round(score, 4), doc_id=row["doc_id"], chunk_id=row["id"], lang=row["lang"],
            title=row["title"], path=row["path"], key=row["key"], snippet=make_snippet(row["text"], query),
            start=row["start"], end=row["end"], more_chunks=matches[row["doc_id"]] - 1,
        )
        for i, (score, row) in enumerate(ranked)
    ]


def query_terms(query: str) -> list[str]:
    """Words of the query worth locating in a snippet: Latin words and Han runs (as bigrams)."""
    terms = [w.lower() for w in re.findall(r"[A-Za-z0-9_]{2,}", query)]
    for run in re.findall(r"[\u4e00-\u9fff]+", query):
        terms.extend([run] if len(run) <= 2 else [run[i : i + 2] for i in range(len(run) - 1)])
    return terms


def make_snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """The chunk, whitespace-collapsed, cut to `width` around the first query term it contains.

    A cross-lingual hit usually contains no query term; it then shows from the start.
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lower = flat.lower()
    positions = [p for p in (lower.find(t) for t in query_terms(query)) if p >= 0]
    start = max(0, min(positions) - width // 3) if positions else 0
    start = min(start, len(flat) - width)
    snippet = flat[start : start + width]
    return ("…" if start > 0 else "") + snippet + ("…" if start + width < len(flat) else "")
