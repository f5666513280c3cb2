"""Where a search's time goes, in process: encode, FAISS, SQLite, lexical, calibration, snippets.

    python benchmarks/search_profile.py [--size 100000] [--model base] [--runtime auto] [--precision auto] [--batch 1] [--queries 400]
                                        [--same-language-words 0 4] [--json]

Runs dev queries (benchmarks/common.py: dev_queries, none a text of the collection) through
`search.searcher.search_batch` on the cached benchmark collection, `--batch` queries per call
(1 = a CLI search; 8 = what the server's micro-batcher hands over under 8 clients), after 16
untimed warm-up queries. Each stage is timed by wrapping the function that does it; what is
left is ranking and Python glue ("other"). Reported per query: mean ms per stage and its share.

Stages: encode (query vectors: `Encoder.encode_queries`), faiss (`VectorStore.search`), sqlite
(`DocumentStore.chunk_rows`: the candidates' rows), lexical (`DocumentStore.search_terms`: FTS5
bm25, and `term_chunk_counts`: which words it scores, `SearchConfig.same_language_words`),
calibration (`search.calibration.language_calibration`), snippets (`searcher._hits`: snippet
windows plus the sentence embeddings of semantic snippets).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    add_collection_args,
    collection_from_args,
    collection_texts_in,
    dev_queries,
    load_tokenizer,
    machine_info,
    stamp,
    write_result,
)

STAGES = ("encode", "faiss", "sqlite", "lexical", "calibration", "snippets")


def profile(db: Path, model: Path | None, runtime: str, queries: list[str], warmup: list[str], batch: int, precision: str = "auto",
            same_language_words: int | None = None) -> dict:
    import search.calibration as calibration
    import search.searcher as searcher
    from core.config import SearchConfig
    from search.searcher import SearchRequest, search_batch
    from xlsearch import Index

    spent: dict[str, float] = defaultdict(float)

    def timed(owner, name: str, stage: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[stage] += time.perf_counter() - t

        setattr(owner, name, wrapper)

    index = Index(db, model, runtime=runtime, precision=precision).load()
    store, encoder = index.store, index.encoder
    timed(encoder, "encode_queries", "encode")
    timed(store.vectors, "search", "faiss")
    timed(store.documents, "chunk_rows", "sqlite")
    timed(store.documents, "search_terms", "lexical")
    timed(store.documents, "term_chunk_counts", "lexical")
    timed(searcher, "_hits", "snippets")
    timed(searcher, "_dense_scores", "calibration")
    del calibration
    config = SearchConfig() if same_language_words is None else SearchConfig(same_language_words=same_language_words)
    for q in warmup:
        search_batch(store, encoder, [SearchRequest(q)], config)
    spent.clear()
    started = time.perf_counter()
    for b in range(0, len(queries), batch):
        search_batch(store, encoder, [SearchRequest(q) for q in queries[b : b + batch]], config)
    wall = time.perf_counter() - started
    n = len(queries)
    stages = {s: round(1000 * spent[s] / n, 2) for s in STAGES}
    stages["other"] = round(1000 * wall / n - sum(stages.values()), 2)
    index.close()
    return {"batch": batch, "queries": n, "ms_per_query": round(1000 * wall / n, 2), "stages_ms": stages,
            "shares": {s: round(v / (1000 * wall / n), 3) for s, v in stages.items()},
            "runtime": encoder.runtime, "precision": encoder.precision, "model": encoder.name,
            "same_language_words": config.same_language_words}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_collection_args(ap)
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--precision", default="auto", help="the query encoder's (int8: ONNX Runtime's int8 graph)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--search-model", default=None, help="search with this model instead of the collection's (same vectors needed)")
    ap.add_argument("--same-language-words", type=int, nargs="+", default=[None],
                    help="SearchConfig.same_language_words values (0: every word), each its own run (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    db, _, model = collection_from_args(args)
    picked = [q["text"] for q in dev_queries(args.queries + 16, 1, load_tokenizer(model), collection_texts_in(db))]
    runs = [profile(db, args.search_model, args.runtime, picked[16:], picked[:16], b, args.precision, words)
            for b in args.batch for words in args.same_language_words]
    report = {"benchmark": "search_profile", **stamp(), "db": str(db), "runs": runs, "machine": machine_info()}
    lines = [f"{'batch':>5} {'words':>5} {'ms/query':>9} " + " ".join(f"{s:>11}" for s in (*STAGES, "other"))]
    for r in runs:
        stages = " ".join(f"{r['stages_ms'][s]:>11}" for s in (*STAGES, "other"))
        lines.append(f"{r['batch']:>5} {r['same_language_words']:>5} {r['ms_per_query']:>9} {stages}")
    out = args.out or Path(__file__).parent / "results" / f"search-profile-{args.size}-{args.runtime}.json"
    write_result(report, out, args.json, "\n".join(lines))


if __name__ == "__main__":
    main()
