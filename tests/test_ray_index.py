"""Indexing with Ray Data: the same index as a single-process run, incremental, failures in one line.

One local Ray cluster (2 CPUs) serves the module, and the tiny encoder runs on ONNX Runtime, so
an actor is ready in about a second (no torch import) and each run takes seconds.
"""

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from core.config import ChunkConfig, IndexConfig
from core.errors import InputError, ModelError, WorkerError
from indexer.pipeline import run_index
from storage.store import Store

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from indexer.ray_index import run_index_ray  # noqa: E402  (after the skip: the module imports without Ray, its tests need it)


@pytest.fixture(scope="module")
def cluster():
    import logging

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def onnx_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with an ONNX export: what named models run on, and an actor loads it in ~1 s."""
    from models.onnx_export import export_onnx

    folder = shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("ray-model") / "tiny")
    export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def encoder(onnx_model_dir):
    from models.loading import load_encoder

    loaded = load_encoder(onnx_model_dir, runtime="onnx")
    assert loaded.runtime == "onnx"
    return loaded


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "docs"
    (root / "zh").mkdir(parents=True)
    (root / "a.md").write_text("# Layers\n\n" + "the quick brown fox jumps over the lazy dog. " * 12, encoding="utf-8")
    (root / "b.txt").write_text("search engines rank documents by relevance to a query.", encoding="utf-8")
    (root / "c.md").write_text("# Install\n\ninstall the package, then index the folder and search it.", encoding="utf-8")
    (root / "zh" / "d.txt").write_text("快速的棕色狐狸跳过了懒狗。" * 10, encoding="utf-8")
    (root / "zh" / "e.md").write_text("# 搜索\n\n搜索引擎按照与查询的相关性对文档进行排序。", encoding="utf-8")
    (root / "zh" / "f.txt").write_text("安装软件包，然后索引文件夹并进行搜索。", encoding="utf-8")
    (root / "binary.md").write_bytes(bytes(range(256)) * 4)
    return root


CONFIG = {"chunk": ChunkConfig(max_tokens=24, overlap_tokens=4), "commit_every_chunks": 6}  # several commit batches


def index(runner, paths, db, encoder, **kw):
    config = IndexConfig(**{**CONFIG, **kw})
    with Store.open_for_writing(db, encoder.identity) as store:
        return runner(paths, store, encoder, config, progress=False)


def counts(summary) -> dict:
    return {k: v for k, v in summary.to_dict().items() if k not in ("seconds", "chunks_per_second")}


def dump(db: Path) -> tuple[list, np.ndarray, int]:
    """Every chunk (id, file, document, span, text, ...) in id order, their vectors, and the vector store's count."""
    with Store.open(db) as store:
        rows = store.documents.db.execute(
            'select c.id, f.path, f.sha256, d.key, d.title, d.lang, c.ord, c.start, c."end", c.lang, c.n_tokens, '
            'substr(d.text, c.start + 1, c."end" - c.start) from chunks c join documents d on c.doc_id = d.id '
            "join files f on d.file_id = f.id order by c.id"
        ).fetchall()
        ids, vectors = store.documents.vectors()
        assert [r[0] for r in rows] == list(ids)
        return rows, vectors, store.vectors.index().ntotal


def assert_same_index(db, expected_db):
    rows, vectors, ntotal = dump(db)
    expected_rows, expected_vectors, expected_ntotal = dump(expected_db)
    assert rows == expected_rows and ntotal == expected_ntotal == len(rows)
    np.testing.assert_allclose(vectors, expected_vectors, atol=1e-5)


def snapshot(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(db.iterdir()) if p.name != "write.lock"}


def test_a_ray_index_is_the_single_process_index(cluster, corpus, tmp_path, encoder):
    from search.searcher import search

    plain = index(run_index, [corpus], tmp_path / "plain", encoder)
    summary = index(run_index_ray, [corpus], tmp_path / "ray", encoder)
    assert counts(summary) == counts(plain)
    assert summary.added == 6 and summary.skipped == [(str(corpus / "binary.md"), "binary file (not text)")]
    assert_same_index(tmp_path / "ray", tmp_path / "plain")
    for query in ("the lazy dog", "搜索引擎"):
        with Store.open(tmp_path / "ray") as store:
            got = search(store, encoder, query, k=5)
        with Store.open(tmp_path / "plain") as store:
            expected = search(store, encoder, query, k=5)
        assert [(h.chunk_id, h.path) for h in got] == [(h.chunk_id, h.path) for h in expected]
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-4)


def test_an_incremental_ray_run_embeds_only_what_changed(cluster, corpus, tmp_path, encoder):
    for runner, db in ((run_index, tmp_path / "plain"), (run_index_ray, tmp_path / "ray")):
        index(runner, [corpus], db, encoder)
    (corpus / "b.txt").write_text("search engines rank documents by relevance. " * 6, encoding="utf-8")
    (corpus / "zh" / "g.md").write_text("# 图层\n\n图层 蒙版 画笔 颜色 选择工具 图像 窗口", encoding="utf-8")
    (corpus / "c.md").unlink()

    plain = index(run_index, [corpus], tmp_path / "plain", encoder, prune=True)
    summary = index(run_index_ray, [corpus], tmp_path / "ray", encoder, prune=True)
    assert counts(summary) == counts(plain)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (1, 1, 4, 1)
    rows, _, _ = dump(tmp_path / "ray")
    changed = [r for r in rows if r[1] in (str(corpus / "b.txt"), str(corpus / "zh" / "g.md"))]
    assert summary.chunks == len(changed) > 0, "only the changed and the added file are embedded"
    assert str(corpus / "c.md") not in {r[1] for r in rows}
    assert_same_index(tmp_path / "ray", tmp_path / "plain")


@pytest.fixture
def breaking_model_dir(tmp_path, onnx_model_dir) -> Path:
    """The tiny model told its window is 512 tokens: it has position embeddings for 130, so ONNX
    Runtime fails on any longer text (and embeds short ones as before)."""
    folder = shutil.copytree(onnx_model_dir, tmp_path / "breaking")
    record = folder / "onnx" / "xlsearch_onnx.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "max_seq_length": 512}), encoding="utf-8")
    return folder


def test_a_worker_that_fails_stops_the_run_in_one_line_after_whole_batches(cluster, corpus, tmp_path, breaking_model_dir):
    from models.loading import load_encoder

    breaking = load_encoder(breaking_model_dir, runtime="onnx")
    (corpus / "a.md").write_text("# Layers\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")  # short: embeds
    (corpus / "zh" / "d.txt").write_text("快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    (corpus / "zz-long.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    kw = {"chunk": ChunkConfig(max_tokens=400, overlap_tokens=0), "commit_every_chunks": 2}
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):  # ONNX Runtime's own error: a bug in a single-process run
        index(run_index, [corpus], tmp_path / "plain", breaking, **kw)
    with pytest.raises(WorkerError) as failed:
        index(run_index_ray, [corpus], tmp_path / "ray", breaking, **kw)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("a Ray worker failed (") and f"while embedding {corpus / 'zz-long.txt'}: " in message
    assert_same_index(tmp_path / "ray", tmp_path / "plain")  # the batches before the failure, whole, as a plain run leaves them
    with closing(sqlite3.connect(tmp_path / "ray" / "index.sqlite")) as conn:
        paths = {p for (p,) in conn.execute("select path from files")}
    assert len(paths) >= 2 and str(corpus / "zz-long.txt") not in paths  # commit batches of 2 files went in before it
    assert f"files committed before this ({len(paths)}) are kept" in message and "run again" in message


def test_a_worker_that_dies_leaves_the_index_as_it_was(cluster, corpus, tmp_path, encoder, monkeypatch):
    from ray.data import Dataset

    index(run_index, [corpus], tmp_path / "idx", encoder)
    (corpus / "a.md").write_text("changed", encoding="utf-8")
    before = snapshot(tmp_path / "idx")

    def dies(self, *args, **kwargs):
        raise ray.exceptions.ActorDiedError()
        yield

    monkeypatch.setattr(Dataset, "iter_batches", dies)
    with pytest.raises(WorkerError, match=r"^a Ray worker failed \(ActorDiedError: The actor died unexpectedly .*\) — files committed "
                                          r"before this \(0\) are kept; fix the cause \(each node's Ray logs are in /tmp/ray/"):
        index(run_index_ray, [corpus], tmp_path / "idx", encoder)
    assert snapshot(tmp_path / "idx") == before


def test_a_node_with_another_model_at_the_path_is_refused(cluster, corpus, tmp_path, encoder, tiny_model_dir, tiny_encoder):
    from models.centering import LanguageCentering, write_centered_model
    from models.onnx_export import export_onnx

    class Elsewhere:
        """The index's encoder, but the path the workers load from holds another model."""

        def __getattr__(self, name):
            return getattr(encoder, name)

    rng = np.random.default_rng(0)
    means = {(lang, kind): rng.normal(size=tiny_encoder.dim).astype(np.float32) for lang in ("en", "zh") for kind in ("query", "passage")}
    centering = LanguageCentering.from_means(tiny_encoder.tokenizer, means, tiny_encoder.prompts)
    other = write_centered_model(tiny_model_dir, tmp_path / "other", centering)
    export_onnx(other)
    elsewhere = Elsewhere()
    elsewhere.path = other
    with pytest.raises(ModelError, match=f"^the model at {other} on the Ray node .* is not this index's model"):
        index(run_index_ray, [corpus], tmp_path / "idx", elsewhere)


def test_without_ray_the_message_names_the_extra(corpus, tmp_path, encoder, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(InputError, match=r"pip install 'xlsearch\[ray\]'"):
        index(run_index_ray, [corpus], tmp_path / "idx", encoder)


def test_cli_index_with_ray_gives_the_plain_index(cluster, corpus, tmp_path, onnx_model_dir):
    from click.testing import CliRunner

    from cli import cli

    def run(*args):
        return CliRunner().invoke(cli, ["-q", *map(str, args)], catch_exceptions=False)

    plain, with_ray = tmp_path / "plain", tmp_path / "ray"
    assert run("index", corpus, "--db", plain, "--model", onnx_model_dir).exit_code == 0
    r = run("index", corpus, "--db", with_ray, "--model", onnx_model_dir, "--ray", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 6 and len(json.loads(r.stdout)["skipped"]) == 1
    for query in ("the quick brown fox", "搜索引擎"):
        hits = [json.loads(run("search", query, "--db", db, "--json").stdout)["hits"] for db in (plain, with_ray)]
        assert [(h["chunk_id"], h["path"]) for h in hits[0]] == [(h["chunk_id"], h["path"]) for h in hits[1]]
    # an optional value swallows the next word: a path there is a mistake, said so
    r = run("index", "--db", tmp_path / "x", "--ray", corpus)
    assert r.exit_code == 2 and "put --ray after the paths" in r.output and not (tmp_path / "x").exists()
