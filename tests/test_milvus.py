"""Milvus as the vector store: Milvus Lite in the index folder, and a Milvus server (Milvus Lite's
own gRPC server, started here) — the same answers as FAISS, kept in step with SQLite."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from cli import cli  # noqa: E402
from search.searcher import Filters, SearchRequest  # noqa: E402
from storage.milvus_store import MARKER, MilvusVectorStore, milvus_expression  # noqa: E402
from storage.store import Store  # noqa: E402
from storage.vector_store import VectorFilter  # noqa: E402
from xlsearch import Index  # noqa: E402

EN = [
    "the quick brown fox jumps over the lazy dog",
    "search engines rank documents by relevance to a query",
    "install the package, then index the folder and search it",
    "layers masks brushes colors selection tool image window",
]
ZH = ["快速的棕色狐狸跳过了懒狗", "搜索引擎按照与查询的相关性对文档进行排序", "安装软件包，然后索引文件夹并进行搜索", "图层 蒙版 画笔 颜色 选择工具 图像 窗口"]
QUERIES = ["the quick brown fox", "搜索引擎", "install the package", "图层 蒙版", "query relevance"]


def run(*args, env=None):
    return CliRunner().invoke(cli, ["-q", *map(str, args)], env=env, catch_exceptions=False)


@pytest.fixture
def docs(tmp_path):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    for i, text in enumerate(EN):
        (root / f"en{i}.md").write_text(f"# English {i}\n\n{text}.", encoding="utf-8")
    for i, text in enumerate(ZH):
        (root / "sub" / f"zh{i}.txt").write_text(text + "。", encoding="utf-8")
    return root


def answers(db, *options):
    out = []
    for query in QUERIES:
        r = run("search", query, "--db", db, "-k", "5", "--json", *options)
        assert r.exit_code == 0, r.output
        out.append([(h["path"], h["chunk_id"], round(h["similarity"] or 0, 4)) for h in json.loads(r.stdout)["hits"]])
    return out


def test_milvus_lite_answers_as_faiss_does_and_is_recorded(docs, tmp_path, tiny_model_dir):
    faiss_db, milvus_db = tmp_path / "faiss", tmp_path / "milvus"
    assert run("index", docs, "--db", faiss_db, "--model", tiny_model_dir).exit_code == 0
    r = run("index", docs, "--db", milvus_db, "--model", tiny_model_dir, "--vector-store", "milvus-lite", "--json")
    assert r.exit_code == 0, r.output
    for options in ([], ["--lang", "zh"], ["--mode", "dense"], ["--mode", "dense", "--no-balance"], ["--path", "*/sub/*"], ["--offset", "2"]):
        assert answers(milvus_db, *options) == answers(faiss_db, *options), options
    info = json.loads(run("info", "--db", milvus_db, "--json").stdout)
    assert info["vector_store"] == "milvus-lite" and info["vectors_in_sync"] and info["chunks"] == 8
    assert "vectors    milvus-lite flat" in run("info", "--db", milvus_db).stdout
    assert (milvus_db / "milvus.db").is_dir() and not list(milvus_db.glob("*.faiss"))


def test_filters_are_pushed_down_and_batched_requests_grouped(docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "milvus-lite").exit_code == 0
    with Index(db) as index:
        store = index.store
        qvec = index.encoder.encode_queries(["the quick brown fox"])
        zh_only = store.vectors.search(qvec, 8, VectorFilter(lang="zh"))[0]
        assert len(zh_only) == 4 and {store.documents.chunk_rows([c])[c]["lang"] for c, _ in zh_only} == {"zh"}
        assert len(store.vectors.search(qvec, 8, VectorFilter(path_glob="*/sub/zh1.txt"))[0]) == 1
        assert store.vectors.search(qvec, 8, VectorFilter(modified_after=time.time() + 3600)) == [[]]
        results = index.search_batch([
            SearchRequest("the quick brown fox", lang="en"), SearchRequest("the quick brown fox", lang="zh"),
            SearchRequest("狐狸", filters=Filters(path_glob="*/en0.md")),
        ])
    assert {h.lang for h in results[0]} == {"en"} and {h.lang for h in results[1]} == {"zh"}
    assert [h.path.endswith("en0.md") for h in results[2]] == [True]


def test_expression_quotes_values_and_leaves_classes_to_the_caller():
    where = VectorFilter("zh", '*/a "b"\\c?.md', ("markdown", "text"), 1.5, float("inf"))
    assert milvus_expression(where) == (
        'lang == "zh" and file_type in ["markdown", "text"] and mtime >= 1.5 and path like "%/a \\"b\\"\\\\c_.md"'
    )
    assert milvus_expression(VectorFilter(path_glob="*/[ab]/*")) == "" and milvus_expression(None) == ""


def milvus_ids(store: Store) -> list[int]:
    return sorted(store.vectors._milvus_ids(store.vectors.connect()).tolist())


def test_incremental_runs_upsert_and_delete_by_chunk_id(docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "milvus-lite").exit_code == 0
    (docs / "en0.md").write_text("# Changed\n\na changed English document about foxes.", encoding="utf-8")
    (docs / "sub" / "zh3.txt").unlink()
    (docs / "new.md").write_text("a brand new document", encoding="utf-8")
    r = run("index", docs, "--db", db, "--prune", "--json")
    summary = json.loads(r.stdout)
    assert (summary["added"], summary["updated"], summary["removed"], summary["unchanged"]) == (1, 1, 1, 6)
    with Store.open(db) as store:
        assert milvus_ids(store) == sorted(store.documents.chunk_ids().tolist())
        assert json.loads((db / MARKER).read_text())["generation"] == store.documents.generation
    hits = json.loads(run("search", "a brand new document", "--db", db, "--json", "-k", "1").stdout)["hits"]
    assert hits[0]["path"].endswith("new.md")


def test_a_crash_before_the_milvus_write_is_repaired_on_the_next_open(docs, tmp_path, tiny_model_dir, monkeypatch):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "milvus-lite").exit_code == 0
    (docs / "new.md").write_text("a brand new document", encoding="utf-8")

    def crash(self):
        raise KeyboardInterrupt  # the run dies after SQLite's commit, before Milvus is written

    with monkeypatch.context() as m:
        m.setattr(MilvusVectorStore, "sync", crash)
        assert run("index", docs, "--db", db).exit_code != 0
    assert not json.loads(run("info", "--db", db, "--json").stdout)["vectors_in_sync"]
    with Store.open(db) as store:
        assert len(milvus_ids(store)) == 8 < store.documents.chunk_count()
    # a reader (no run in progress) repairs it, and its answer includes the new chunk
    hits = json.loads(run("search", "a brand new document", "--db", db, "--json", "-k", "1").stdout)["hits"]
    assert hits[0]["path"].endswith("new.md")
    assert json.loads(run("info", "--db", db, "--json").stdout)["vectors_in_sync"]
    with Store.open(db) as store:
        assert milvus_ids(store) == sorted(store.documents.chunk_ids().tolist())


def test_a_reader_during_a_run_searches_milvus_plus_the_new_chunks(docs, tmp_path, tiny_model_dir, monkeypatch):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "milvus-lite").exit_code == 0
    (docs / "new.md").write_text("a brand new document", encoding="utf-8")
    monkeypatch.setattr(MilvusVectorStore, "sync", lambda self: None)  # the run has committed, not yet synced
    assert run("index", docs, "--db", db).exit_code == 0
    monkeypatch.setattr("storage.milvus_store.write_lock_held", lambda d: True)  # and still holds the lock
    hits = json.loads(run("search", "a brand new document", "--db", db, "--json", "-k", "1").stdout)["hits"]
    assert hits[0]["path"].endswith("new.md")
    assert not json.loads(run("info", "--db", db, "--json").stdout)["vectors_in_sync"]  # not repaired by the reader


def test_switching_an_index_to_milvus_moves_its_vectors(docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir).exit_code == 0
    before = answers(db)
    assert list(db.glob("vectors-*.faiss"))
    r = run("index", docs, "--db", db, "--vector-store", "milvus-lite", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["unchanged"] == 8
    assert not list(db.glob("vectors-*.faiss")) and answers(db) == before
    assert json.loads(run("info", "--db", db, "--json").stdout)["vector_store"] == "milvus-lite"
    r = run("index", "--db", db, "--vector-store", "faiss", "--json")  # and back, with no paths: only the vectors move
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 0
    assert list(db.glob("vectors-*.faiss")) and answers(db) == before
    assert json.loads(run("info", "--db", db, "--json").stdout)["vector_store"] == "faiss"


def test_bad_or_unreachable_vector_store_writes_nothing(docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    r = run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "milvus://127.0.0.1:1")
    assert r.exit_code == 1 and "cannot reach Milvus at http://127.0.0.1:1" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (db / "index.sqlite").exists()
    r = run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "elastic")
    assert r.exit_code == 2 and "--vector-store 'elastic'" in r.output and not (db / "index.sqlite").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def milvus_server(tmp_path):
    """A Milvus server on localhost: Milvus Lite's gRPC server, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "server-data"), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"milvus://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_a_milvus_server_holds_the_vectors(docs, tmp_path, tiny_model_dir, milvus_server):
    faiss_db, db, other = tmp_path / "faiss", tmp_path / "idx", tmp_path / "other"
    assert run("index", docs, "--db", faiss_db, "--model", tiny_model_dir).exit_code == 0
    r = run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", milvus_server)
    assert r.exit_code == 0, r.output
    spec = json.loads(run("info", "--db", db, "--json").stdout)["vector_store"]
    assert spec.startswith(milvus_server + "/xlsearch_")  # a collection of its own
    assert answers(db) == answers(faiss_db) and answers(db, "--lang", "en") == answers(faiss_db, "--lang", "en")
    # a second index on the same server gets another collection; a named one is used as named
    assert run("index", docs, "--db", other, "--model", tiny_model_dir, "--vector-store", milvus_server + "/mine").exit_code == 0
    assert json.loads(run("info", "--db", other, "--json").stdout)["vector_store"] == milvus_server + "/mine"
    assert answers(other) == answers(db)


def test_milvus_lite_open_in_another_process_is_searched_from_sqlite(docs, tmp_path, tiny_model_dir, caplog):
    db = tmp_path / "idx"
    env = {**os.environ, "XLSEARCH_HOME": str(tmp_path / "home")}
    subprocess.run(
        [sys.executable, "-m", "cli", "-q", "index", str(docs), "--db", str(db), "--model", str(tiny_model_dir),
         "--vector-store", "milvus-lite"], check=True, env=env,
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pymilvus import MilvusClient; MilvusClient({str(db / 'milvus.db')!r}); print('open', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with Index(db) as index:
            hits = index.search("快速的棕色狐狸跳过了懒狗", k=1)
        assert hits[0].path.endswith("zh0.txt")
        assert "open in another process" in caplog.text
        (docs / "sub" / "new.txt").write_text("a brand new document", encoding="utf-8")
        r = run("index", docs, "--db", db)  # the writer leaves the new vectors to the process holding Milvus Lite
        assert r.exit_code == 0, r.output
        assert not json.loads(run("info", "--db", db, "--json").stdout)["vectors_in_sync"]
    finally:
        holder.communicate("\n", timeout=30)
    # once it has let go, the next reader brings them in
    hits = json.loads(run("search", "a brand new document", "--db", db, "--json", "-k", "1").stdout)["hits"]
    assert hits[0]["path"].endswith("new.txt")
    assert json.loads(run("info", "--db", db, "--json").stdout)["vectors_in_sync"]


def test_a_collection_dropped_behind_the_index_is_rebuilt(docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir, "--vector-store", "milvus-lite").exit_code == 0
    before = answers(db)
    with Store.open(db) as store:
        store.vectors.connect().drop_collection("chunks")
        store.vectors.close()
    assert answers(db) == before
