"""Hard negatives for query → passage training, mined once with the model about to be trained
(or the one `data.hard_negatives_from` names).

In-batch negatives are mostly easy: 31 random help sections rarely compete with the right one.
A search engine's real mistakes are near misses — the section on deleting a table for a query
about inserting one. So before the first step every query searches all training passages with
the starting model, and one of its nearest wrong passages joins its row of the InfoNCE softmax.

False negatives are the risk (a passage that answers the query but is not its pair). Two guards,
after NV-Retriever (Moreira et al. 2024, "positive-aware" mining): a candidate must score below
`ceiling` × the query's score for its own passage, and the pick is random among the first
`window` candidates that pass rather than always the nearest. A query's own passages (in both
languages) never count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

from .student import Student

log = logging.getLogger(__name__)


def mine(student: Student, pairs: list[tuple[str, str]], out: Path, ceiling: float = 0.95, window: int = 10,
         seed: int = 0, shortlist: int = 64, passage_tokens: int | None = None) -> list[str | None]:
    """Per (query, passage) pair, a hard negative passage (None when no candidate passes the
    guards); cached in `out` by the pairs, the settings and the model folder. Passages are cut at
    `passage_tokens` (default: the student's max_tokens), as training will see them."""
    key = hashlib.sha256(json.dumps([pairs, ceiling, window, seed, shortlist, str(student.folder), student.max_tokens, passage_tokens],
                                    ensure_ascii=False).encode()).hexdigest()[:16]
    path = Path(out) / f"hard-negatives-{key}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    queries = sorted({q for q, _ in pairs})
    passages = sorted({p for _, p in pairs})
    log.info("hard negatives: embedding %d queries and %d passages once", len(queries), len(passages))
    q_vecs = student.encode(queries, "query")
    p_vecs = student.encode(passages, "passage", max_tokens=passage_tokens)
    p_row = {p: i for i, p in enumerate(passages)}
    gold: dict[str, set[int]] = {}
    for q, p in pairs:
        gold.setdefault(q, set()).add(p_row[p])
    found: dict[str, list[int]] = {}  # query → candidate passages that pass the guards, nearest first
    for start in range(0, len(queries), 256):
        block = queries[start : start + 256]
        sims = q_vecs[start : start + len(block)] @ p_vecs.T
        top = sims.topk(min(shortlist, len(passages)), dim=1)
        for row, q in enumerate(block):
            own = gold[q]
            best = max(float(sims[row, j]) for j in own)
            bar = best - (1 - ceiling) * abs(best)  # = ceiling × best for the usual positive score
            found[q] = [j for s, j in zip(top.values[row].tolist(), top.indices[row].tolist()) if j not in own and s < bar]
    rng = random.Random(seed)
    negatives = [passages[rng.choice(found[q][:window])] if found[q] else None for q, _ in pairs]
    log.info("hard negatives: %d of %d pairs got one", sum(n is not None for n in negatives), len(pairs))
    path.write_text(json.dumps(negatives, ensure_ascii=False), encoding="utf-8")
    return negatives


def with_negatives(pairs: list[tuple[str, str]], negatives: list[str | None]) -> list[tuple[str, str, str]]:
    """The pairs that got a hard negative, as (query, passage, negative) triples."""
    return [(q, p, n) for (q, p), n in zip(pairs, negatives) if n is not None]

