"""Store consistency: generations, crash repair, model identity, the write lock."""

import os

import faiss
import numpy as np
import pytest

from core.errors import IndexBusyError, IndexCorruptError, IndexMismatchError, InputError
from models.identity import ModelIdentity
from storage.records import ChunkRecord, DocumentRecord, FileRecord
from storage.store import Store

DIM = 8


def identity(seed=0, name="m"):
    v = np.random.default_rng(seed).normal(size=DIM)
    return ModelIdentity(name, f"/models/{name}", DIM, tuple(v / np.linalg.norm(v)))


def unit(seed):
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def record(path, seed, n_chunks=2, lang="en"):
    text = " ".join(f"sentence {i}." for i in range(n_chunks))
    chunks = [ChunkRecord(i, i + 1, lang, 3, unit(seed * 100 + i)) for i in range(n_chunks)]
    return FileRecord(path, f"sha{seed}", 10, 0.0, "text", [DocumentRecord("", f"title {seed}", text, lang, chunks)])


def one_chunk_files(vecs):
    """A file per vector (/f0, /f1, ...), each one document of one chunk."""
    return [
        FileRecord(f"/f{i}", f"s{i}", 1, 0.0, "text", [DocumentRecord("", "t", "x" * 10, "en", [ChunkRecord(0, 5, "en", 2, v)])])
        for i, v in enumerate(vecs)
    ]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "idx"


def test_write_search_and_generation(db):
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1), record("/b", 2, lang="zh")])
        store.sync_vectors()
        assert store.documents.generation == 1
    assert sorted(p.name for p in db.glob("vectors-*")) == ["vectors-00000001.faiss"]
    with Store.open(db) as store:
        hits = store.vectors.search(unit(200)[None, :], 4)[0]  # /b's first chunk vector
        rows = store.documents.chunk_rows([cid for cid, _ in hits])
        best = rows[hits[0][0]]
        assert best["path"] == "/b" and best["lang"] == "zh" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        info = store.info()
        assert info["files"] == 2 and info["chunks"] == 4 and info["documents_by_lang"] == {"en": 1, "zh": 1}
        assert info["vectors_in_sync"]


def test_rows_without_text_and_texts_by_id_agree_with_full_rows(db):
    """Search ranks on rows without text and reads the text of the hits alone."""
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1, n_chunks=3), record("/b", 2, lang="zh")])
        store.sync_vectors()
    with Store.open(db) as store:
        ids = [cid for cid, _ in store.vectors.search(unit(100)[None, :], 5)[0]]
        full, light = store.documents.chunk_rows(ids), store.documents.chunk_rows(ids, text=False)
        assert len(full) == 5 and all("text" not in row for row in light.values())
        assert light == {cid: {k: v for k, v in row.items() if k != "text"} for cid, row in full.items()}
        assert store.documents.chunk_texts_by_id(ids + [10**6]) == {cid: row["text"] for cid, row in full.items()}
        doc_text = "sentence 0. sentence 1. sentence 2."  # /a's and /b's texts start alike (see `record`)
        assert all(row["text"] == doc_text[row["start"] : row["end"]] for row in full.values())
        assert store.documents.chunk_texts_by_id([]) == {}


def test_replacing_a_file_replaces_its_chunks(db):
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1, n_chunks=3)])
        store.write_files([record("/a", 5, n_chunks=1)])
        store.sync_vectors()
        assert store.info()["chunks"] == 1
        assert store.vectors.index().ntotal == 1
        store.write_files([], removed_paths=["/a"])
        store.sync_vectors()
        assert store.info()["files"] == 0 and store.vectors.index().ntotal == 0


def test_stale_or_missing_vectors_are_rebuilt_from_sqlite(db, caplog):
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1)])
        store.sync_vectors()
        store.write_files([record("/b", 2)])  # committed, but the run "dies" before sync_vectors
    assert not (db / "vectors-00000002.faiss").exists()
    with Store.open(db) as store:
        assert store.vectors.index().ntotal == 4  # rebuilt in memory, with a warning
        assert "out of date" in caplog.text
        assert not store.info()["vectors_in_sync"]
    with Store.open_for_writing(db, identity()) as store:
        assert store.vectors.index().ntotal == 4  # a writer repairs on disk
    assert sorted(p.name for p in db.glob("vectors-*")) == ["vectors-00000002.faiss"]


def test_damaged_faiss_file_is_rebuilt(db):
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1)])
        store.sync_vectors()
    (db / "vectors-00000001.faiss").write_bytes(b"garbage")
    with Store.open(db) as store:
        assert store.vectors.index().ntotal == 2


def test_damaged_sqlite_is_a_clear_error(db):
    db.mkdir()
    (db / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexCorruptError, match="index.sqlite"):
        Store.open(db)


def test_missing_index_is_a_clear_error(db):
    with pytest.raises(InputError, match="no index at .* `xlsearch index PATH --db "):
        Store.open(db)


def test_other_model_is_refused_before_anything_changes(db):
    with Store.open_for_writing(db, identity(0, "first")) as store:
        store.write_files([record("/a", 1)])
        store.sync_vectors()
    before = {p.name: p.read_bytes() for p in db.iterdir() if p.suffix == ".faiss"}
    with pytest.raises(IndexMismatchError, match="built with model 'first'.*--model /models/first"):
        Store.open_for_writing(db, identity(1, "second"))
    with Store.open(db) as store:
        with pytest.raises(IndexMismatchError):
            store.check_model(identity(1, "second"))
        store.check_model(identity(0, "first-renamed"))  # same vectors, other name: fine
        assert store.info()["files"] == 1
    assert before == {p.name: p.read_bytes() for p in db.iterdir() if p.suffix == ".faiss"}


def test_second_writer_is_refused_with_the_holder_pid(db):
    with Store.open_for_writing(db, identity()):
        with pytest.raises(IndexBusyError, match=f"pid {os.getpid()}"):
            Store.open_for_writing(db, identity())
        with Store.open(db) as reader:  # readers are never blocked
            assert reader.info()["files"] == 0
    with Store.open_for_writing(db, identity()):
        pass  # the lock was released


def test_non_index_directory_is_refused(tmp_path):
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(InputError, match="non-empty directory without an index"):
        Store.open_for_writing(tmp_path, identity())


@pytest.mark.parametrize("kind", ["flat", "flat16", "hnsw", "ivf"])
def test_index_types_agree_with_exact_search(db, kind):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(1500, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    files = one_chunk_files(vecs)
    with Store.open_for_writing(db, identity(), kind) as store:
        store.write_files(files)
        store.sync_vectors()
        assert store.documents.meta("index_type") == kind
        top = [cid for cid, _ in store.vectors.search(vecs[7][None, :], 5)[0]]
        rows = store.documents.chunk_rows(top)
        assert rows[top[0]]["path"] == "/f7"


@pytest.mark.parametrize("kind", ["flat", "flat16"])
def test_flat_vectors_are_updated_by_diff_not_rebuilt(db, monkeypatch, kind):
    with Store.open_for_writing(db, identity(), kind) as store:
        store.write_files([record("/a", 1), record("/b", 2)])
        store.sync_vectors()
        monkeypatch.setattr(store.vectors, "_build_from_sqlite", lambda: pytest.fail("full rebuild"))
        store.write_files([record("/b", 3, n_chunks=3)], removed_paths=["/a"])
        store.sync_vectors()
        index = store.vectors.index()
        ids = sorted(r[0] for r in store.documents.db.execute("select id from chunks"))
        assert sorted(faiss.vector_to_array(index.id_map)) == ids and index.ntotal == 3
        top = store.vectors.search(unit(301)[None, :], 1)[0]
        assert store.documents.chunk_rows([top[0][0]])[top[0][0]]["path"] == "/b" and top[0][1] == pytest.approx(1.0, abs=1e-3)


def test_flat16_holds_half_the_bytes_and_scores_within_fp16_rounding(tmp_path):
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(300, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    files = one_chunk_files(vecs)
    found, size = {}, {}
    for kind in ("flat", "flat16"):
        with Store.open_for_writing(tmp_path / kind, identity(), kind) as store:
            store.write_files(files)
            store.sync_vectors()
            found[kind] = store.vectors.search(vecs[:20], 10)
            size[kind] = sum(p.stat().st_size for p in (tmp_path / kind).glob("vectors-*.faiss"))
    assert size["flat16"] - 300 * DIM * 2 == pytest.approx(size["flat"] - 300 * DIM * 4, abs=256)  # same ids and header
    for exact, half in zip(found["flat"], found["flat16"]):
        exact, half = dict(exact), dict(half)
        assert len(set(exact) & set(half)) >= 9  # only a near tie at the cut can swap
        assert all(half[c] == pytest.approx(exact[c], abs=2e-3) for c in set(exact) & set(half))


def test_flat16_is_refused_for_milvus_before_anything_changes(db):
    pytest.importorskip("milvus_lite")
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1)])
    with pytest.raises(InputError, match="flat16 is for FAISS"):
        Store.open_for_writing(db, identity(), "flat16", vectors="milvus-lite")
    with Store.open(db) as store:
        assert store.documents.meta("index_type") == "flat" and store.documents.meta("vector_store") == "faiss"
    with pytest.raises(InputError, match="flat16 is for FAISS"):
        Store.open_for_writing(db.parent / "new", identity(), "flat16", vectors="milvus-lite")
    assert not (db.parent / "new" / "index.sqlite").exists()


def test_chunk_ids_are_never_reused(db):
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([record("/a", 1)])
        first = max(r[0] for r in store.documents.db.execute("select id from chunks"))
        store.write_files([], removed_paths=["/a"])
        store.write_files([record("/a", 1)])
        assert min(r[0] for r in store.documents.db.execute("select id from chunks")) > first


def test_opening_the_storage_layer_leaves_pandas_unimported_and_importable():
    """sqlite_utils would import pandas (0.3 s of every CLI start); it is hidden only for that import."""
    pytest.importorskip("pandas")
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json, sys, storage.store; before = 'pandas' in sys.modules; import pandas; "
            "print(json.dumps([before, pandas.__name__]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert json.loads(out.stdout) == [False, "pandas"]


def test_term_chunk_counts_are_fts5s_own_and_write_nothing(db):
    """What search uses to leave out the words most chunks hold (search.searcher._same_language_match)."""
    chunks = [ChunkRecord(0, 1, "en", 1, unit(i), terms=t) for i, t in enumerate(["apt get", "apt", "文件 apt", "get"])]
    doc = DocumentRecord("", "t", "x", "en", chunks)
    with Store.open_for_writing(db, identity()) as store:
        store.write_files([FileRecord("/a", "sha", 1, 0.0, "text", [doc])])
        store.sync_vectors()
    with Store.open(db) as store:
        with store.documents.snapshot():  # inside a read transaction, as a search reads
            assert store.documents.term_chunk_counts(["apt", "get", "文件", "absent"]) == {"apt": 3, "get": 2, "文件": 1}
        assert store.documents.term_chunk_counts(["apt"]) == {"apt": 3}  # again, after the snapshot's rollback
        assert store.documents.term_chunk_counts([]) == {}
        names = [r[0] for r in store.documents.db.execute("select name from sqlite_master")]
    assert not any("chunks_fts_terms" in n for n in names)
