"""Dense search over the store: embed the query, take the nearest chunks, one hit per document.

FAISS ranks chunks; a document with several matching chunks should appear once, under its best
chunk, so we over-fetch chunks and group. A language filter is applied after the vector search
(FAISS knows nothing of languages), widening the fetch until enough hits survive. With
`balance` (the default), candidates are ranked by scores calibrated per language
(`search.calibration`), so a document in the other language is not buried under
same-language text that merely shares the query's language.
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
BALANCE_FETCH = 200  # candidates scored per query when balancing, so both languages are present


@dataclass
class Hit:
    rank: int
    score: float  # what the ranking used: calibrated z-score when balanced, else cosine
    similarity: float  # cosine between query and chunk
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


def search(store: Store, encoder: Encoder, query: str, k: int = 10, lang: str = "any", balance: bool = True) -> list[Hit]:
    query = validate_query(query, k, lang)
    qvec = encoder.encode([query], "query")[0]
    balance = balance and lang == "any"
    total = store.vector_index().ntotal
    fetch = min(total, max(k * 10 + 20, BALANCE_FETCH if balance else 0))
    while True:
        found = store.search_vectors(qvec, fetch)
        rows = store.chunk_rows([cid for cid, _ in found])
        # a row is None when an index run still in progress deleted its chunk: skip it
        candidates = [(rows[cid], sim) for cid, sim in found if cid in rows and lang in ("any", rows[cid]["lang"])]
        if balance and candidates:
            calibrate = store.language_calibration()
            ranked = calibrate(qvec, [sim for _, sim in candidates], [row["lang"] for row, _ in candidates])
        else:
            ranked = [sim for _, sim in candidates]
        best: dict[int, tuple[float, float, dict]] = {}
        matches: dict[int, int] = {}
        for (row, sim), score in zip(candidates, ranked):
            doc = row["doc_id"]
            matches[doc] = matches.get(doc, 0) + 1
            if doc not in best or score > best[doc][0]:
                best[doc] = (float(score), sim, row)
        if len(best) >= k or fetch >= total:
            break
        fetch = min(total, fetch * 4)
    top = sorted(best.values(), key=lambda t: -t[0])[:k]
    return [
        Hit(
            rank=i + 1, score=round(score, 4), similarity=round(sim, 4), doc_id=row["doc_id"], chunk_id=row["id"],
            lang=row["lang"], title=row["title"], path=row["path"], key=row["key"],
            snippet=make_snippet(row["text"], query), start=row["start"], end=row["end"],
            more_chunks=matches[row["doc_id"]] - 1,
        )
        for i, (score, sim, row) in enumerate(top)
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
