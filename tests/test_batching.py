"""Micro-batched search: the batcher's routing, and a batch answering exactly as single searches."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from cli import cli
from core.errors import InputError
from search.searcher import Filters, SearchRequest, search, search_batch
from storage.store import Store
from web.batching import MicroBatcher

_EN = "the quick brown fox jumps over the lazy dog search engines rank documents by relevance version 2.4".split()
_ZH = list("快速的棕色狐狸跳过了懒狗搜索引擎按照与查询的相关性对文档进行排序")


# -- the batcher --------------------------------------------------------------------------------


def test_requests_arriving_during_a_batch_go_together_as_the_next():
    first_started, release = threading.Event(), threading.Event()
    batches = []

    def run(requests):
        batches.append(list(requests))
        if len(batches) == 1:
            first_started.set()
            release.wait(10)
        return [ValueError(r) if r == "bad" else r * 2 for r in requests]

    batcher = MicroBatcher(run)
    results = {}

    def submit(r):
        try:
            results[r] = batcher.submit(r)
        except ValueError as exc:
            results[r] = f"raised {exc}"

    first = threading.Thread(target=submit, args=("a",))
    first.start()
    assert first_started.wait(10)  # "a" runs at once, alone
    others = [threading.Thread(target=submit, args=(r,)) for r in ("b", "bad", "c")]
    for t in others:
        t.start()
    while len(batcher._queue) < 3:  # all three queued behind the running batch
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert batches[0] == ["a"] and sorted(batches[1]) == ["b", "bad", "c"] and len(batches) == 2
    assert results == {"a": "aa", "b": "bb", "c": "cc", "bad": "raised bad"}  # an error stays with its request
    assert batcher.batch_sizes == {1: 1, 3: 1}


def test_a_failing_batch_fails_each_of_its_requests_and_the_batcher_goes_on():
    calls = []

    def run(requests):
        calls.append(requests)
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return list(requests)

    batcher = MicroBatcher(run)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.submit(1)
    assert batcher.submit(2) == 2


def test_batches_are_capped_and_never_overlap():
    running, overlaps, lock = [0], [], threading.Lock()

    def run(requests):
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        threading.Event().wait(0.002)
        with lock:
            running[0] -= 1
        return [r + 1 for r in requests]

    batcher = MicroBatcher(run, max_batch=4)
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(batcher.submit, range(200))) == list(range(1, 201))
    assert max(overlaps) == 1 and max(batcher.batch_sizes) <= 4
    assert sum(size * n for size, n in batcher.batch_sizes.items()) == 200


# -- search_batch ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("batching") / "docs"
    root.mkdir()
    rng = random.Random(0)
    for i in range(40):
        words = rng.choices(_ZH, k=30) if i % 2 else [" ".join(rng.choices(_EN, k=12))]
        (root / f"doc{i:02d}.md").write_text("".join(words) + ".", encoding="utf-8")
    db = root.parent / "idx"
    r = CliRunner().invoke(cli, ["-q", "index", str(root), "--db", str(db), "--model", str(tiny_model_dir), "--max-tokens", "16",
                                 "--overlap-tokens", "0"])
    assert r.exit_code == 0, r.output
    return db


REQUESTS = [
    SearchRequest("quick brown fox"),
    SearchRequest("搜索引擎", k=3, lang="en"),
    SearchRequest("lazy dog", mode="lexical"),
    SearchRequest("version 2.4", mode="hybrid", offset=2),
    SearchRequest("   "),  # bad: empty
    SearchRequest("相关性 排序", balance=False, mode="dense", k=25),
    SearchRequest("fox", filters=Filters(path_glob="*doc0*")),
    SearchRequest("dog", k=0),  # bad: k
    SearchRequest("quick brown fox"),  # the same query twice in one batch
]


def _summary(hits):
    return [(h.doc_id, h.chunk_id, h.rank, h.snippet, h.highlights, h.more_chunks) for h in hits]


def _scores(hits):
    return [h.score for h in hits]


def test_a_batch_answers_each_request_as_a_single_search_would(db, tiny_encoder):
    with Store.open(db) as store:
        alone = []
        for r in REQUESTS:
            try:
                alone.append(search(store, tiny_encoder, r.query, r.k, r.lang, r.balance, r.mode, filters=r.filters, offset=r.offset))
            except InputError as exc:
                alone.append(exc)
        together = search_batch(store, tiny_encoder, REQUESTS)
    assert len(together) == len(REQUESTS)
    for r, one, batched in zip(REQUESTS, alone, together):
        if isinstance(one, InputError):
            assert isinstance(batched, InputError) and str(batched) == str(one), r
        else:
            assert one, r
            # the query vectors of a batch are computed padded together: equal to ~1e-6
            assert _summary(batched) == _summary(one), r
            assert _scores(batched) == pytest.approx(_scores(one), abs=1e-3), r


def test_concurrent_http_searches_are_batched_and_answered_correctly(db):
    from fastapi.testclient import TestClient

    from web.app import create_app

    queries = ["quick brown fox", "搜索引擎", "lazy dog", "相关性", "version 2.4", "跳过了懒狗", "rank documents", "棕色狐狸"] * 4
    with TestClient(create_app(db)) as client:
        expected = {q: client.get("/api/search", params={"q": q}).json() for q in set(queries)}
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda q: client.get("/api/search", params={"q": q}), queries))
        assert all(r.status_code == 200 for r in got)
        for q, r in zip(queries, got):
            assert [h["doc_id"] for h in r.json()["hits"]] == [h["doc_id"] for h in expected[q]["hits"]], q
        batches = {int(size): n for size, n in client.get("/healthz").json()["search_batches"].items()}
        assert sum(size * n for size, n in batches.items()) == 1 + len(expected) + len(queries)  # the warm-up too


def test_equal_scores_keep_one_order_alone_and_in_a_batch(tmp_path, tiny_model_dir):
    """Copies of one text (in files that differ, so not collapsed) score exactly alike; their
    order is by chunk id, not by whichever order a single or a batched vector search gave them
    (a soak run under load saw such pairs swap)."""
    import xlsearch

    docs = tmp_path / "docs"
    docs.mkdir()
    for i, name in enumerate(("b.md", "a.md", "c.md")):
        (docs / name).write_text("the same sentence about the lazy dog" + "\n" * (i + 1), encoding="utf-8")
    (docs / "other.md").write_text("something else entirely", encoding="utf-8")
    with xlsearch.Index(tmp_path / "idx", tiny_model_dir, create=True) as index:
        index.add([docs])
        alone = index.search("lazy dog", k=4, mode="dense")
        copies = [h for h in alone if h.path != str(docs / "other.md")]
        assert len({h.score for h in copies}) == 1 and [h.chunk_id for h in copies] == sorted(h.chunk_id for h in copies)
        batched = index.search_batch([SearchRequest(q, k=4, mode="dense") for q in ("fox", "lazy dog", "rank", "lazy dog")])
        assert batched[1] == batched[3] == alone
