"""Same-language reordering: words move pages within the query's language, never across."""

from search.same_language import reorder_same_language


def rows_for(langs: dict[int, str]) -> dict[int, dict]:
    # chunk id == 10 × document id, for readability
    return {doc * 10: {"doc_id": doc, "lang": lang} for doc, lang in langs.items()}


LANGS = {1: "en", 2: "zh", 3: "en", 4: "zh", 5: "en"}
DENSE = {1: (3.0, 10), 2: (2.5, 20), 3: (2.0, 30), 4: (1.5, 40), 5: (1.0, 50)}


def ranking(best):
    return [doc for doc, _ in sorted(best.items(), key=lambda kv: -kv[1][0])]


def test_words_reorder_the_query_language_and_keep_every_rank_language():
    out = reorder_same_language(DENSE, [(50, 9.0)], rows_for(LANGS), "en", weight=3.0)
    before, after = ranking(DENSE), ranking(out)
    assert after[0] == 5  # the English page holding the words rises to the English top
    assert [LANGS[d] for d in after] == [LANGS[d] for d in before]
    assert sorted(s for s, _ in out.values()) == sorted(s for s, _ in DENSE.values())
    assert [d for d in after if LANGS[d] == "zh"] == [2, 4]  # the other language does not move


def test_other_language_matches_and_a_zero_weight_change_nothing():
    rows = rows_for(LANGS)
    assert reorder_same_language(DENSE, [(40, 9.0)], rows, "en", weight=2.0) == DENSE
    assert reorder_same_language(DENSE, [(50, 9.0)], rows, "en", weight=0.0) == DENSE


def test_a_page_only_the_words_found_joins_its_language():
    langs = {**LANGS, 6: "en"}
    out = reorder_same_language(DENSE, [(60, 5.0)], rows_for(langs), "en", weight=10.0)
    assert ranking(out)[0] == 6 and out[6][1] == 60
    assert [langs[d] for d in ranking(out)] == ["en", "zh", "en", "zh", "en", "en"]


def test_a_small_weight_only_breaks_near_ties():
    close = {1: (3.0, 10), 3: (2.99, 30), 5: (0.5, 50)}
    out = reorder_same_language(close, [(30, 1.0), (50, 1.0)], rows_for(LANGS), "en", weight=0.1)
    assert ranking(out) == [3, 1, 5]


def test_the_reordering_match_keeps_the_querys_rarest_words(tmp_path):
    import numpy as np

    from core.config import SearchConfig
    from models.identity import ModelIdentity
    from search.searcher import _same_language_match
    from storage.records import ChunkRecord, DocumentRecord, FileRecord
    from storage.store import Store

    dim = 4
    rng = np.random.default_rng(0)
    # "printer" in all 10 chunks, "setup" in 9, "driver" in 2, "apt-get" (the phrase apt get) in 1
    terms = ["printer setup"] * 8 + ["printer driver setup", "printer driver apt get"]
    chunks = [ChunkRecord(0, 1, "en", 2, rng.normal(size=dim).astype(np.float32), t) for t in terms]
    doc = DocumentRecord("", "t", "x", "en", chunks)
    with Store.open_for_writing(tmp_path, ModelIdentity("m", "/m", dim, (1.0, 0.0, 0.0, 0.0))) as store:
        store.write_files([FileRecord("/a", "sha", 1, 0.0, "text", [doc])])
        store.sync_vectors()
    with Store.open(tmp_path) as store:
        def match(words):
            return _same_language_match(store, "the printer driver setup fax apt-get", SearchConfig(same_language_words=words))

        # 0: every word but the common ones, not looked up
        assert match(0) == '"printer" OR "driver" OR "setup" OR "fax" OR "apt-get"'
        assert match(2) == '"driver" OR "apt-get"'  # the two rarest, in the query's order
        assert match(3) == '"driver" OR "setup" OR "apt-get"'
        assert match(10) == '"printer" OR "driver" OR "setup" OR "apt-get"'  # "fax" is in no chunk: it can match nothing
        assert _same_language_match(store, "fax", SearchConfig(same_language_words=4)) is None
