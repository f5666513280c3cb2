"""Same-language lexical evidence, without burying the other language.

Dense scores find a page in either language; words find pages in the query's own language
only. Mixed into one score, word matches lift every same-language page and push cross-lingual
answers down — measured on dev data (benchmarks/search_modes.py), that costs more than it
brings. Yet within its own language, a page whose title or summary line holds the query's words
is the answer far more often than its best passage's cosine says (benchmarks/page_retrieval.py).

So the query-language documents are *reordered* among themselves by dense score + full-text
bm25, and take over the scores their group held in the dense ranking, best to worst: every
rank keeps the language the dense ranking gave it, and only which same-language page sits there
changes. The other language's documents do not move.
"""

from __future__ import annotations

import numpy as np


def reorder_same_language(
    best: dict[int, tuple[float, int]], matches: list[tuple[int, float]], rows: dict[int, dict], lang: str, weight: float
) -> dict[int, tuple[float, int]]:
    """`best`: document id → (score, chunk id) from the dense ranking; `matches`: (chunk id,
    bm25) full-text matches (higher is better). Returns `best` with the `lang` documents
    reordered, and documents only the words found added to that group at its bottom."""
    lexical: dict[int, tuple[float, int]] = {}
    for cid, bm25 in matches:
        row = rows[cid]
        if row["lang"] == lang and (row["doc_id"] not in lexical or bm25 > lexical[row["doc_id"]][0]):
            lexical[row["doc_id"]] = (bm25, cid)
    if weight <= 0 or not lexical:
        return best
    group = [doc for doc, (_, cid) in best.items() if rows[cid]["lang"] == lang]
    floor = min((score for score, _ in best.values()), default=0.0)
    added = [doc for doc in lexical if doc not in best]
    dense = np.array([best[doc][0] for doc in group] + [floor] * len(added), np.float64)
    if not len(dense):
        return best
    members = group + added
    z = (dense - dense.mean()) / (dense.std() or 1.0)
    top = max(bm25 for bm25, _ in lexical.values()) or 1.0
    combined = z + weight * np.array([lexical[doc][0] / top if doc in lexical else 0.0 for doc in members])
    order = sorted(range(len(members)), key=lambda i: (-combined[i], members[i]))
    out = dict(best)
    for score, i in zip(sorted(dense, reverse=True), order):
        doc = members[i]
        out[doc] = (float(score), best[doc][1] if doc in best else lexical[doc][1])
    return out
