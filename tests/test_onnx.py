"""The ONNX Runtime path: same vectors as PyTorch, chosen when it should be, refused when damaged.

Everything runs on the tiny random-weight model (an export takes a few seconds); the real default
model's export is checked in tests/test_real_encoder.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from core.errors import ModelError
from tests.fresh_search import fresh_search

TEXTS = ["the quick brown fox", "快速的棕色狐狸", "", "search " * 200, "安装软件包 install the package"]


def fresh_copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def test_onnx_vectors_equal_torch_vectors_in_both_modes(exported):
    from models.onnx_encoder import OnnxEncoder
    from models.torch_encoder import TorchEncoder

    onnx, torch_ = OnnxEncoder(exported), TorchEncoder(exported)
    assert onnx.window < 200  # the long text is cut into windows on both paths
    for kind in ("query", "passage"):
        a, b = onnx.encode(TEXTS, kind, batch_size=2), torch_.encode(TEXTS, kind, batch_size=3)
        assert np.allclose(a, b, atol=1e-5), kind
    assert onnx.identity.same_model(torch_.identity)
    assert onnx.count_tokens(TEXTS) == torch_.count_tokens(TEXTS)
    assert onnx.token_spans("install 软件包") == torch_.token_spans("install 软件包")
    assert (onnx.dim, onnx.prompts, onnx.window) == (torch_.dim, torch_.prompts, torch_.window)


def test_the_centering_module_is_applied_on_the_onnx_path(exported, tiny_model_dir):
    """Without it the vectors would equal the uncentered model's."""
    from models.onnx_encoder import OnnxEncoder
    from models.torch_encoder import TorchEncoder

    centered = OnnxEncoder(exported).encode(TEXTS[:2], "query")
    plain = TorchEncoder(tiny_model_dir).encode(TEXTS[:2], "query")
    assert not np.allclose(centered, plain, atol=1e-3)


def test_auto_runtime_uses_onnx_when_exported_and_torch_for_bulk_int8_and_bf16(exported, tiny_model_dir):
    from models.loading import load_encoder

    assert load_encoder(exported).runtime == "onnx"
    assert load_encoder(exported, precision="int8", bulk=True).runtime == "torch"  # int8 queries: tests/test_onnx_int8.py
    assert load_encoder(exported, precision="bf16").runtime == "torch"
    assert load_encoder(exported, runtime="torch").runtime == "torch"
    assert load_encoder(tiny_model_dir).runtime == "torch"  # no export: torch, silently
    with pytest.raises(ModelError, match=r"onnx/model\.onnx: missing — rebuild it with `xlsearch model export-onnx --model .* --force`"):
        load_encoder(tiny_model_dir, runtime="onnx")
    with pytest.raises(ModelError, match="bf16 runs on the torch runtime only"):
        load_encoder(exported, runtime="onnx", precision="bf16")


def test_auto_runs_bulk_work_at_the_cpus_precision_and_a_query_on_onnx(exported, monkeypatch):
    """A one-off query pays for start-up (ONNX, fp32); bulk work pays per token (bf16 where the
    CPU has it, which only torch runs). Without bf16 instructions bulk work stays on ONNX."""
    from core import config
    from models.loading import load_encoder

    monkeypatch.setattr(config, "auto_cpu_precision", lambda cpuinfo=None: "bf16")
    assert load_encoder(exported).runtime == "onnx"
    bulk = load_encoder(exported, bulk=True)
    assert (bulk.runtime, bulk.precision) == ("torch", "bf16")
    assert load_encoder(exported, precision="fp32", bulk=True).runtime == "onnx", "asked for fp32: ONNX"
    assert load_encoder(exported, runtime="torch").precision == "bf16", "torch's auto is the CPU's"
    monkeypatch.setattr(config, "auto_cpu_precision", lambda cpuinfo=None: "fp32")
    assert load_encoder(exported, bulk=True).runtime == "onnx"


def test_the_api_indexes_as_bulk_work_and_searches_and_serves_as_queries(exported, tmp_path, monkeypatch):
    """A large indexing job runs as bulk work; a small one, a search and a server as queries."""
    import xlsearch.index
    from core import config
    from web.app import Engine
    from xlsearch import Index

    monkeypatch.setattr(config, "auto_cpu_precision", lambda cpuinfo=None: "bf16")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("the quick brown fox jumps over the lazy dog", encoding="utf-8")
    db = tmp_path / "idx"
    with Index(db, exported, create=True) as index:
        index.add([docs])
        assert (index.encoder.runtime, index.encoder.precision, index.info()["precision"]) == ("onnx", "fp32", "fp32")
    (docs / "b.md").write_text("search engines rank documents", encoding="utf-8")
    monkeypatch.setattr(xlsearch.index, "SMALL_INDEX_JOB_BYTES", 60)  # the two files hold 72 bytes
    with Index(db, exported) as index:
        index.add([docs])
        assert (index.encoder.runtime, index.encoder.precision, index.info()["precision"]) == ("torch", "bf16", "bf16+fp32")
        assert index.search("fox", k=1), "the bulk encoder also answers searches"
    with Index(db) as index:
        assert index.search("fox", k=1) and (index.encoder.runtime, index.encoder.precision) == ("onnx", "fp32")
    engine = Engine.open(db)  # serving: queries, on ONNX Runtime (measured no faster on bf16)
    try:
        assert (engine.index.encoder.runtime, engine.index.encoder.precision) == ("onnx", "fp32")
        assert engine.search("fox", k=1)
    finally:
        engine.index.close()


def test_a_truncated_weights_file_is_refused_naming_it(exported, tmp_path):
    from models.onnx_encoder import OnnxEncoder

    model = fresh_copy(exported, tmp_path / "m")
    data = model / "onnx" / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(ModelError, match=rf"{data}: truncated or replaced .* — rebuild it with `xlsearch model export-onnx"):
        OnnxEncoder(model)


def test_damaged_weights_of_the_right_size_are_refused(exported, tmp_path):
    """Same size, other bytes: only the probe vector can tell."""
    from models.onnx_encoder import OnnxEncoder

    model = fresh_copy(exported, tmp_path / "m")
    data = model / "onnx" / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 4096] = bytes(4096)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=len(raw) // 4).astype(np.float32).tobytes()
    data.write_bytes(noise + bytes(len(raw) - len(noise)))
    with pytest.raises(ModelError, match=r"model\.onnx: does not give the vectors recorded when it was built"):
        OnnxEncoder(model)


def test_a_garbage_graph_file_is_refused(exported, tmp_path):
    from models.onnx_encoder import OnnxEncoder

    model = fresh_copy(exported, tmp_path / "m")
    (model / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match=r"cannot load the ONNX graph or tokenizer .* — rebuild it with"):
        OnnxEncoder(model)


def test_an_export_from_other_weights_is_refused(exported, tmp_path, tiny_model_dir):
    """The export of one model copied into another model's folder (same architecture)."""
    from models.onnx_encoder import OnnxEncoder

    other = fresh_copy(tiny_model_dir, tmp_path / "other")
    weights = other / "model.safetensors"
    from safetensors.numpy import load_file, save_file

    tensors = {k: v + np.float32(0.01) for k, v in load_file(str(weights)).items()}
    weights.unlink()
    save_file(tensors, str(weights))
    shutil.copytree(exported / "onnx", other / "onnx")
    with pytest.raises(ModelError, match=r"exported from other weights than .* — rebuild it with"):
        OnnxEncoder(other)


def test_export_onnx_command_and_its_errors(tiny_model_dir, tmp_path):
    model = fresh_copy(tiny_model_dir, tmp_path / "m")
    r = CliRunner().invoke(cli, ["-q", "model", "export-onnx", "--model", str(model)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(model / "onnx")
    record = json.loads((model / "onnx" / "xlsearch_onnx.json").read_text())
    assert record["dim"] == 32 and len(record["probe"]) == 32
    r = CliRunner().invoke(cli, ["-q", "model", "export-onnx", "--model", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and r.stderr.startswith("error: model folder not found:") and "Traceback" not in r.output


def test_a_model_with_a_module_onnx_cannot_run_is_refused_before_exporting(tiny_model_dir, tmp_path):
    model = fresh_copy(tiny_model_dir, tmp_path / "m")
    modules = json.loads((model / "modules.json").read_text())
    modules.insert(2, {"idx": 9, "name": "9", "path": "9_Dense", "type": "sentence_transformers.sentence_transformer.modules.dense.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    r = CliRunner().invoke(cli, ["-q", "model", "export-onnx", "--model", str(model)])
    assert r.exit_code == 1 and "Dense has no ONNX path — use --runtime torch" in r.stderr
    assert not (model / "onnx").exists()


def test_a_search_on_the_onnx_runtime_imports_no_torch(exported, tmp_path):
    """The point of the ONNX path: a fresh search process never loads torch or transformers."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the quick brown fox jumps over the lazy dog")
    (docs / "b.txt").write_text("快速的棕色狐狸跳过了懒狗")
    db = tmp_path / "idx"
    r = CliRunner().invoke(cli, ["-q", "index", str(docs), "--db", str(db), "--model", str(exported)])
    assert r.exit_code == 0, r.output
    assert fresh_search(db) == {"hits": 2, "heavy": []}


def test_a_damaged_export_fails_a_search_in_one_line_and_leaves_the_index_alone(exported, tmp_path):
    model = fresh_copy(exported, tmp_path / "m")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the quick brown fox")
    db = tmp_path / "idx"
    assert CliRunner().invoke(cli, ["-q", "index", str(docs), "--db", str(db), "--model", str(model)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in db.iterdir() if p.name != "write.lock"}
    data = model / "onnx" / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:1000])
    r = CliRunner().invoke(cli, ["-q", "search", "fox", "--db", str(db)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.startswith(f"error: {data}: truncated or replaced") and r.stderr.count("\n") == 1
    assert "xlsearch model export-onnx" in r.stderr
    assert {p.name: p.read_bytes() for p in db.iterdir() if p.name != "write.lock"} == before
    r = CliRunner().invoke(cli, ["-q", "search", "fox", "--db", str(db), "--runtime", "torch", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["hits"][0]["path"].endswith("a.txt")


def test_onnx_runtimes_failed_allocation_becomes_memory_error(exported, monkeypatch):
    """So that indexing reports it as out of memory (exit 5, a smaller --batch-size), as on torch."""
    from models.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder(exported)

    class Session:
        def run(self, *args):
            raise RuntimeError("BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer of size 1")

    monkeypatch.setattr(encoder, "session", Session())
    with pytest.raises(MemoryError, match="allocate memory"):
        encoder.encode(["the quick brown fox"])
