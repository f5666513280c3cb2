"""Does another `--index-type` change what a search shows? Hits compared query by query.

    python benchmarks/index_types.py [--size 100000] [--model base] [--index-type flat16] [--queries 400] [--json]
    python benchmarks/index_types.py --db DIR --index-type flat16

The collection (benchmarks/common.py, or `--db`) is copied once to
`$XLSEARCH_HOME/bench/index-types/<collection>-<type>/` and its vectors rebuilt there as `--index-type`
(`Store.open_for_writing(..., index_type)` + `sync_vectors`, what `xlsearch index --index-type`
does), so SQLite, the model and the queries are the same on both sides and only the FAISS file
differs. `--queries` dev queries (half English, half Chinese, none a text of the collection) go
through `Index.search` (hybrid, balanced: the defaults) on both: the share of queries whose top
10 documents are the same in the same order, the share of top-10 hits both return, and the
largest change of a shared hit's cosine. `--index-type flat` on a flat collection is the control
(a search is deterministic: 100 % the same). Timing is not measured here: `search_profile.py --db` and
`http_latency.py --db` measure the copy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
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

K = 10


def copy_as(db: Path, index_type: str) -> Path:
    """The collection's copy with its vectors rebuilt as `index_type` (made once, then reused)."""
    from core.config import xlsearch_home
    from storage.store import Store

    target = xlsearch_home() / "bench" / "index-types" / f"{db.parent.name}-{index_type}"
    if not (target / "done").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(db, target, ignore=shutil.ignore_patterns("write.lock", "*.tmp"))
        with Store.open(target) as store:
            identity = store.model_identity
        with Store.open_for_writing(target, identity, index_type) as store:
            store.sync_vectors()
        (target / "done").write_text(str(db))
    return target


def top_hits(db: Path, queries: list[str]) -> list[list[tuple[int, float | None]]]:
    """Per query, the top documents and their best chunk's cosine (None: a lexical-only hit)."""
    from xlsearch import Index

    with Index(db) as index:
        return [[(h.doc_id, h.similarity) for h in index.search(q, k=K)] for q in queries]


def compare(ours: list[list[tuple[int, float | None]]], theirs: list[list[tuple[int, float | None]]]) -> dict:
    """Same SQLite on both sides, so a document id names the same document."""
    same = shared = 0
    drift = 0.0
    for a, b in zip(ours, theirs):
        same += [d for d, _ in a] == [d for d, _ in b]
        cos_a, cos_b = dict(a), dict(b)
        common = cos_a.keys() & cos_b.keys()
        shared += len(common)
        drift = max([drift, *(abs(cos_a[d] - cos_b[d]) for d in common if cos_a[d] is not None and cos_b[d] is not None)])
    return {"queries": len(ours), "same_top10_share": round(same / len(ours), 4),
            "shared_of_top10": round(shared / max(1, sum(len(a) for a in ours)), 4), "max_cosine_diff": round(drift, 6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_collection_args(ap)
    ap.add_argument("--index-type", default="flat16", help="the type to compare with the collection's own")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    db, _, model = collection_from_args(args)
    other = copy_as(Path(db), args.index_type)
    queries = [q["text"] for q in dev_queries(args.queries, args.seed, load_tokenizer(model), collection_texts_in(db))]
    from storage.store import Store

    with Store.open(db) as store:
        own_type = store.documents.meta("index_type")
    result = compare(top_hits(db, queries), top_hits(other, queries))
    report = {"benchmark": "index_types", **stamp(), "db": str(db), "copy": str(other),
              "index_types": [own_type, args.index_type], **result, "machine": machine_info()}
    table = (f"{own_type} -> {args.index_type}, {result['queries']} queries: same top 10 (documents and order) "
             f"{result['same_top10_share']:.1%}, shared hits {result['shared_of_top10']:.1%}, "
             f"largest cosine change on a shared hit {result['max_cosine_diff']}")
    out = args.out or Path(__file__).parent / "results" / f"index-types-{own_type}-{args.index_type}.json"
    write_result(report, out, args.json, table)


if __name__ == "__main__":
    main()
