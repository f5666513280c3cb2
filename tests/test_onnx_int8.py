"""int8 queries on ONNX Runtime (models/onnx_int8.py): built from the export, close to fp32, chosen
for queries only, and refused or rebuilt when its files are damaged or stale. On the tiny
random-weight model (the `exported` fixture, tests/conftest.py); the real default's numbers are
benchmarks/asymmetric_queries.py's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from core.errors import ModelError
from tests.fresh_search import HEAVY, fresh_search

TEXTS = ["the quick brown fox", "快速的棕色狐狸", "安装软件包 install the package", "search " * 200]


@pytest.fixture(scope="module")
def int8_model(exported, tmp_path_factory) -> Path:
    """A copy of the exported tiny model with its int8 graph built (the fixture's own stays fp32)."""
    from models.onnx_int8 import build_int8

    model = tmp_path_factory.mktemp("int8") / "m"
    shutil.copytree(exported, model)
    build_int8(model)
    return model


def test_int8_vectors_are_close_to_fp32_and_known_apart(int8_model):
    from models.onnx_encoder import OnnxEncoder

    fp32, int8 = OnnxEncoder(int8_model), OnnxEncoder(int8_model, "int8")
    for kind in ("query", "passage"):
        a, b = fp32.encode(TEXTS, kind), int8.encode(TEXTS, kind)
        cos = (a * b).sum(axis=1)
        assert cos.min() > 0.99 and np.abs(a - b).max() > 1e-6, (kind, cos)  # int8 arithmetic, not fp32 relabelled
    assert (int8.runtime, int8.precision) == ("onnx", "int8")
    assert int8.identity.same_model(fp32.identity), "an index made at fp32 is searched at int8"
    assert int8.fingerprint != fp32.fingerprint, "cached vectors are never mixed"


def test_the_int8_graph_reads_untouched_tensors_from_the_export(int8_model):
    """Only the int8 weights are written again: the embedding table stays in model.onnx.data."""
    import onnx

    graph = onnx.load(str(int8_model / "onnx" / "model.int8.onnx"), load_external_data=False)
    places = {t.name: {e.key: e.value for e in t.external_data}.get("location") for t in graph.graph.initializer}
    embeddings = [name for name in places if "word_embeddings" in name]
    assert embeddings and all(places[name] == "model.onnx.data" for name in embeddings)
    assert any(t.data_type == onnx.TensorProto.INT8 and places[t.name] == "model.int8.onnx.data" for t in graph.graph.initializer)
    assert sum(n.op_type == "MatMulInteger" for n in graph.graph.node) > 0
    down = [n for n in graph.graph.node if n.op_type == "MatMul" and n.name.endswith("output/dense/MatMul") and "attention" not in n.name]
    assert down, "the feed-forward outputs stay fp32"
    smoothing = [n for n in graph.graph.node if n.op_type == "Mul" and n.name.startswith("xlsearch_smooth_")]
    assert len(smoothing) == 3 * 2, "SmoothQuant: one division per tensor read (q/k/v share), three a layer, two layers"
    record = json.loads((int8_model / "onnx" / "xlsearch_onnx_int8.json").read_text())
    assert record["recipe"].startswith("onnx/smoothquant-0.5") and len(record["probe"]) == 32


def test_int8_runs_on_onnx_for_queries_and_torch_for_bulk_work(int8_model, exported, tmp_path):
    from models.loading import load_encoder

    assert (load_encoder(int8_model, precision="int8").runtime, load_encoder(int8_model, precision="int8").precision) == ("onnx", "int8")
    assert load_encoder(int8_model, precision="int8", bulk=True).runtime == "torch"
    fresh = tmp_path / "fresh"
    shutil.copytree(exported, fresh)
    assert not (fresh / "onnx" / "model.int8.onnx").exists()
    assert load_encoder(fresh, precision="int8").precision == "int8", "built on first use"
    assert (fresh / "onnx" / "xlsearch_onnx_int8.json").exists()


def test_auto_runs_queries_at_int8_on_a_vnni_cpu_when_the_graph_is_there(int8_model, exported, tmp_path, monkeypatch, caplog):
    from core import config
    from models.loading import load_encoder

    monkeypatch.setattr(config, "auto_query_precision", lambda cpuinfo=None: "int8")
    assert load_encoder(int8_model, queries=True).precision == "int8"
    assert load_encoder(int8_model).precision == "fp32", "an encoder that may embed passages"
    assert load_encoder(int8_model, bulk=True).precision != "int8", "bulk work keeps its own auto"
    assert load_encoder(exported, queries=True).precision == "fp32", "no int8 graph: fp32, not a 15 s build on a search"
    model = tmp_path / "m"
    shutil.copytree(int8_model, model)
    data = model / "onnx" / "model.int8.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    assert load_encoder(model, queries=True).precision == "fp32"
    assert "model.int8.onnx.data: truncated or replaced" in caplog.text and "searching at fp32" in caplog.text
    monkeypatch.setattr(config, "auto_query_precision", lambda cpuinfo=None: "fp32")
    assert load_encoder(int8_model, queries=True).precision == "fp32"


def test_auto_query_precision_follows_the_cpus_vnni_flag(tmp_path):
    from core import config

    for flags, expected in (("fpu avx2 avx512f avx512_vnni", "int8"), ("fpu avx2 avx_vnni", "int8"), ("fpu avx2 fma", "fp32")):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert config.auto_query_precision(cpuinfo) == expected


def test_damaged_or_stale_int8_files_are_refused_by_name_and_rebuilt_on_load(int8_model, tmp_path):
    from models.loading import load_encoder
    from models.onnx_encoder import OnnxEncoder
    from models.onnx_int8 import read_int8_record

    model = tmp_path / "m"
    shutil.copytree(int8_model, model)
    data = model / "onnx" / "model.int8.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    hint = r"model\.int8\.onnx\.data: truncated or replaced — rebuild it with `xlsearch model export-onnx --model .* --force`"
    with pytest.raises(ModelError, match=hint):
        OnnxEncoder(model, "int8")
    assert load_encoder(model, precision="int8").precision == "int8"  # load_encoder rebuilds it
    read_int8_record(model)
    record = model / "onnx" / "xlsearch_onnx.json"  # a new fp32 export: the int8 graph is stale
    fp32 = json.loads(record.read_text())
    fp32["probe"][0] += 1.0
    record.write_text(json.dumps(fp32))
    with pytest.raises(ModelError, match="built from another export than"):
        read_int8_record(model)


def test_export_onnx_builds_the_int8_graph_and_an_int8_search_needs_no_torch(exported, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(exported, model)
    r = CliRunner().invoke(cli, ["-q", "model", "export-onnx", "--model", str(model)])
    assert r.exit_code == 0, r.output
    assert (model / "onnx" / "xlsearch_onnx_int8.json").exists()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the quick brown fox jumps over the lazy dog")
    (docs / "b.txt").write_text("快速的棕色狐狸跳过了懒狗")
    db = tmp_path / "idx"
    assert CliRunner().invoke(cli, ["-q", "index", str(docs), "--db", str(db), "--model", str(model)]).exit_code == 0
    assert fresh_search(db, "--precision", "int8", watched=(*HEAVY, "onnx")) == {"hits": 2, "heavy": []}


def test_passages_are_never_embedded_at_an_auto_chosen_int8(int8_model, tmp_path, monkeypatch):
    """Auto's int8 was measured for queries against fp32 passages: an index run, even one that
    follows a search in the same Index, embeds at fp32."""
    from core import config
    from xlsearch import Index

    monkeypatch.setattr(config, "auto_query_precision", lambda cpuinfo=None: "int8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("the quick brown fox jumps over the lazy dog", encoding="utf-8")
    db = tmp_path / "idx"
    with Index(db, int8_model, create=True) as index:
        index.add([docs])
        assert (index.encoder.precision, index.info()["precision"]) == ("fp32", "fp32")
    with Index(db) as index:
        assert index.search("fox", k=1) and index.encoder.precision == "int8"
        (docs / "b.md").write_text("search engines rank documents", encoding="utf-8")
        index.add([docs])
        assert index.info()["precision"] == "fp32" and index.encoder.precision == "fp32"
        assert sorted(Path(h.path).name for h in index.search("engines", k=5)) == ["a.md", "b.md"]


def test_a_model_folder_it_cannot_write_to_is_named_not_a_traceback(exported, tmp_path, monkeypatch):
    import models.onnx_int8 as onnx_int8

    model = tmp_path / "m"
    shutil.copytree(exported, model)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the quick brown fox")
    db = tmp_path / "idx"
    assert CliRunner().invoke(cli, ["-q", "index", str(docs), "--db", str(db), "--model", str(model)]).exit_code == 0
    monkeypatch.setattr(onnx_int8, "_quantise", full)
    r = CliRunner().invoke(cli, ["-q", "search", "fox", "--db", str(db), "--precision", "int8"])
    assert r.exit_code == 1 and "Traceback" not in r.output and r.stderr.count("\n") == 1
    assert "cannot write the int8 graph there (No space left on device)" in r.stderr
    with pytest.raises(ModelError, match=r"cannot write the int8 graph there \(No space left on device\) — search with --precision fp32"):
        onnx_int8.build_int8(model)
    assert not (model / "onnx" / "xlsearch_onnx_int8.json").exists()
