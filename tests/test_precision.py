"""int8 encoding (dynamic quantisation of the transformer's Linear layers, per-channel, the
feed-forward down-projections kept fp32) and bf16 encoding (the transformer in bfloat16) behind
the same encoder, and what "auto" picks.

The shipped tiny model is no good for judging reduced precision: its Linear weights have BERT's
initial std of 0.02, so the residual stream carries the output and even *zeroing* every Linear
layer leaves each vector at cosine 0.9997 to the original. These tests use a copy whose Linear
weights are redrawn with std 1/sqrt(fan_in): there, zeroing the Linears drops the cosine below
0.6 (about 0.1-0.3), while int8 stays at ≥ 0.9995 for the worst text in either mode (measured
over six builds; the tiny model's tokenizer, hence its vectors, differ from build to build).
The threshold, 0.99, leaves 20 times that quantisation error as margin; a broken quantised
path fails it by far, and each int8 vector must also be nearer its own fp32 vector than any
other text's (in this random model unrelated texts reach cosine 0.97-0.99 with each other).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from cli import cli
from core import config
from core.config import auto_cpu_precision as real_auto_cpu_precision  # before conftest pins it
from core.config import resolve_precision
from models.torch_encoder import TorchEncoder
from tests.tiny_model import _CORPUS

MIN_COSINE = 0.99
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "search engines rank documents by relevance to a query",
    "快速的棕色狐狸跳过了懒狗",
    "搜索引擎按照与查询的相关性对文档进行排序",
    "图层 蒙版 画笔 layers masks brushes",
    "a",
    "",
    "安装软件包，然后索引文件夹并进行搜索。" * 30,  # longer than the 128-token window: averaged windows
]


@pytest.fixture(scope="module")
def heavy_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with Linear weights that matter (std 1/sqrt(fan_in), seeded)."""
    dest = tmp_path_factory.mktemp("heavy") / "heavy-encoder"
    shutil.copytree(tiny_model_dir, dest)
    weights = load_file(dest / "model.safetensors")
    gen = torch.Generator().manual_seed(0)
    for name, tensor in weights.items():
        if name.startswith("encoder.") and name.endswith(".weight") and tensor.ndim == 2:
            weights[name] = torch.randn(tensor.shape, generator=gen) / tensor.shape[1] ** 0.5
    save_file(weights, dest / "model.safetensors")
    return dest


@pytest.fixture(scope="module")
def fp32(heavy_model_dir):
    return TorchEncoder(heavy_model_dir)


@pytest.fixture(scope="module")
def int8(heavy_model_dir):
    return TorchEncoder(heavy_model_dir, precision="int8")


@pytest.fixture(autouse=True)
def no_precision_env(monkeypatch):
    monkeypatch.delenv(config.PRECISION_ENV, raising=False)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_the_fixture_model_depends_on_its_linear_layers(heavy_model_dir, fp32):
    zeroed = TorchEncoder(heavy_model_dir)
    with torch.no_grad():
        for module in zeroed.model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()
                module.bias.zero_()
    assert cosines(fp32.encode(TEXTS), zeroed.encode(TEXTS)).max() < 0.6, "a broken Linear path must be visible"


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_int8_vectors_are_unit_length_and_close_to_fp32(fp32, int8, kind):
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    exact, quantised = fp32.encode(TEXTS, kind), int8.encode(TEXTS, kind)
    assert quantised.shape == exact.shape == (len(TEXTS), fp32.dim) and quantised.dtype == np.float32
    assert np.allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    assert cosines(exact, quantised).min() > MIN_COSINE
    assert ((quantised @ exact.T).argmax(axis=1) == np.arange(len(TEXTS))).all(), "nearest to its own fp32 vector"
    assert np.abs(exact - quantised).max() > 1e-4, "int8 must really run quantised (not fall back to fp32)"


def test_int8_quantises_the_transformer_linears_but_the_down_projections(fp32, int8):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from models.int8 import SmoothedLinear

    def modules(encoder, kind):
        return {name: m for name, m in encoder.model[0].auto_model.named_modules() if type(m) is kind}

    before = modules(fp32, torch.nn.Linear)
    down = {name for name, m in before.items() if m.in_features > m.out_features}
    assert down and len(down) < len(before), "the tiny model has feed-forward output projections and others"
    smoothed, quantised = modules(int8, SmoothedLinear), modules(int8, DynamicLinear)
    assert set(smoothed) == set(before) - down and set(modules(int8, torch.nn.Linear)) == down
    assert set(quantised) == {f"{name}.linear" for name in smoothed}
    assert all(q.weight().qscheme() == torch.per_channel_affine for q in quantised.values())
    assert not modules(fp32, DynamicLinear) and not modules(fp32, SmoothedLinear)
    embeddings = [m for m in int8.model[0].auto_model.modules() if isinstance(m, torch.nn.Embedding)]
    assert embeddings and all(m.weight.dtype == torch.float32 for m in embeddings)
    assert [type(m) for m in int8.model] == [type(m) for m in fp32.model], "pooling and Normalize untouched"


def test_smoothing_alone_keeps_the_function(heavy_model_dir):
    """Dividing inputs by s and multiplying weight columns by s is exact before quantisation."""
    from models.int8 import SmoothedLinear, calibration_texts, input_maxima, quantised_linears, smooth

    encoder = TorchEncoder(heavy_model_dir)
    exact = encoder.encode(TEXTS, "passage")
    model = encoder.model[0].auto_model
    names = quantised_linears(model)
    maxima, groups = input_maxima(model, names, lambda: encoder.encode(calibration_texts(), "passage"))
    assert set(maxima) == set(names) and all(m.min() > 0 for m in maxima.values())
    assert sorted(sum(groups, [])) == sorted(names)
    query_key_value = [g for g in groups if len(g) == 3]
    assert query_key_value and all({n.rsplit(".", 1)[1] for n in g} == {"query", "key", "value"} for g in query_key_value)
    smooth(model, maxima, groups)
    assert sum(type(m) is SmoothedLinear for m in model.modules()) == len(names)
    assert np.allclose(encoder.encode(TEXTS, "passage"), exact, atol=1e-5)


def test_identity_is_the_same_at_both_precisions_but_the_cache_fingerprint_is_not(fp32, int8):
    assert int8.identity == fp32.identity and int8.identity.same_model(fp32.identity)
    assert int8.fingerprint != fp32.fingerprint, "eval caches must not hand int8 runs fp32 vectors"
    old_rule = hashlib.sha256(np.asarray(fp32.identity.probe, np.float32).tobytes()).hexdigest()[:16]
    assert fp32.fingerprint == old_rule, "fp32 keeps its fingerprint: existing caches stay valid"


def test_eval_vectors_are_cached_per_precision(fp32, int8, tmp_path, monkeypatch):
    from training.evaluate import PairVectors

    monkeypatch.setenv("XLSEARCH_HOME", str(tmp_path))
    pairs = [(TEXTS[0], TEXTS[2]), (TEXTS[1], TEXTS[3])]
    exact = PairVectors.encode(fp32, pairs)
    quantised = PairVectors.encode(int8, pairs)
    assert np.allclose(quantised.en_query, int8.encode([TEXTS[0], TEXTS[1]], "query"))
    assert not np.allclose(quantised.en_query, exact.en_query)


def test_query_cache_and_centering_work_at_int8(heavy_model_dir, fp32, int8, tmp_path):
    from models.centering import LanguageCentering, language_means, write_centered_model

    vec = int8.encode_query("quick fox")
    assert int8.encode_query("quick fox") is vec and np.allclose(vec, int8.encode(["quick fox"], "query")[0])

    means = language_means(fp32, _CORPUS[:4], _CORPUS[4:8])
    module = LanguageCentering.from_means(fp32.tokenizer, means, fp32.prompts)
    centered = TorchEncoder(write_centered_model(heavy_model_dir, tmp_path / "centered", module), precision="int8")
    assert type(centered.model[-2]).__name__ == "LanguageCentering" and centered.model[-2].means.dtype == torch.float32
    assert centered.identity == TorchEncoder(centered.path).identity
    # Centering reads the language from token ids and runs in fp32 after the quantised
    # transformer: the int8 vector minus its language's mean, renormalised, exactly.
    # (Not compared with centered fp32 by cosine: subtracting a mean that is most of this random
    # model's vector magnifies the quantisation noise several times over.)
    for kind in ("query", "passage"):
        for lang, texts in (("en", TEXTS[:2]), ("zh", TEXTS[2:4])):
            expected = int8.encode(texts, kind) - means[(lang, kind)]
            expected /= np.linalg.norm(expected, axis=1, keepdims=True)
            assert np.allclose(centered.encode(texts, kind), expected, atol=1e-5)


@pytest.fixture(scope="module")
def bf16(heavy_model_dir):
    return TorchEncoder(heavy_model_dir, precision="bf16")


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_bf16_runs_the_transformer_in_bfloat16_and_returns_fp32_unit_vectors_near_fp32(fp32, bf16, kind):
    transformer = bf16.model[0].auto_model
    assert bf16.precision == "bf16" and {p.dtype for p in transformer.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fp32.model[0].auto_model.parameters()} == {torch.float32}, "fp32 untouched"
    exact, reduced = fp32.encode(TEXTS, kind), bf16.encode(TEXTS, kind)
    assert reduced.shape == exact.shape and reduced.dtype == np.float32
    assert np.allclose(np.linalg.norm(reduced, axis=1), 1.0, atol=1e-5), "pooled and normalised in fp32"
    assert cosines(exact, reduced).min() > MIN_COSINE
    assert ((reduced @ exact.T).argmax(axis=1) == np.arange(len(TEXTS))).all(), "nearest to its own fp32 vector"
    assert np.abs(exact - reduced).max() > 1e-4, "bf16 must really run in bfloat16 (not fall back to fp32)"


def test_bf16_keeps_the_identity_but_not_the_cache_fingerprint(fp32, bf16):
    assert bf16.identity == fp32.identity, "an index built at bf16 is the same model's"
    assert bf16.fingerprint not in (fp32.fingerprint, TorchEncoder(fp32.path, precision="int8").fingerprint)


def test_auto_is_bf16_on_a_cpu_with_bf16_matrix_instructions_and_fp32_elsewhere(tmp_path, heavy_model_dir, monkeypatch, caplog):
    cpuinfo = tmp_path / "cpuinfo"
    for flags, expected in (("fpu sse2 avx2 fma", "fp32"), ("avx512f avx512_vnni", "fp32"),
                            ("avx512f avx512_bf16 avx512_vnni", "bf16"), ("amx_bf16 amx_tile amx_int8", "bf16")):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n", encoding="ascii")
        assert real_auto_cpu_precision(cpuinfo) == expected, flags
    assert real_auto_cpu_precision(tmp_path / "no-such-file") == "fp32", "no /proc/cpuinfo (macOS): fp32"

    monkeypatch.setattr(config, "auto_cpu_precision", lambda cpuinfo=None: "bf16")
    assert resolve_precision("auto", "cpu") == "bf16" and resolve_precision("AUTO", "cuda") == "fp32"
    assert TorchEncoder(heavy_model_dir, precision="auto").precision == "bf16"
    with caplog.at_level(logging.INFO, logger="core.config"):
        assert resolve_precision("int8", "cuda") == "fp32"
    assert "int8" in caplog.text and "cuda" in caplog.text
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4", "cpu")


# -- the command line ----------------------------------------------------------------------------


def run(*args, env=None):
    return CliRunner().invoke(cli, ["-q", *map(str, args)], env=env, catch_exceptions=False)


def test_index_records_the_precision_and_either_precision_searches_it(heavy_model_dir, tmp_path):
    docs, db = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    # no headings: the query is the zh file's whole text, so even random weights rank it first
    (docs / "en.md").write_text("the quick brown fox jumps over the lazy dog.", encoding="utf-8")
    (docs / "zh.md").write_text("快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    r = run("index", docs, "--db", db, "--model", heavy_model_dir, "--precision", "INT8", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["precision"] == "int8"
    assert json.loads(run("info", "--db", db, "--json").stdout)["precision"] == "int8"
    assert "precision  int8\n" in run("info", "--db", db).stdout

    for precision in ("fp32", "int8"):
        r = run("search", "快速的棕色狐狸跳过了懒狗。", "--db", db, "--precision", precision, "--mode", "dense", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["hits"][0]["path"].endswith("zh.md")

    # nothing re-embedded: the record stays; new vectors at fp32 (from the environment) join it
    run("index", docs, "--db", db, env={config.PRECISION_ENV: "fp32"})
    assert json.loads(run("info", "--db", db, "--json").stdout)["precision"] == "int8"
    (docs / "more.md").write_text("search engines rank documents", encoding="utf-8")
    r = run("index", docs, "--db", db, "--json", env={config.PRECISION_ENV: "fp32"})
    assert json.loads(r.stdout)["precision"] == "fp32" and json.loads(r.stdout)["added"] == 1
    assert json.loads(run("info", "--db", db, "--json").stdout)["precision"] == "fp32+int8"
    assert "precision  fp32 and int8 (runs at different precisions" in run("info", "--db", db).stdout


@pytest.mark.parametrize("command", ["index", "search", "serve", "embed", "eval"])
def test_every_encoding_command_takes_precision_and_refuses_a_bad_one(command, tmp_path):
    r = run(command, "--help")
    assert "--precision [auto|fp32|bf16|int8]" in r.stdout and "XLSEARCH_PRECISION" in r.stdout
    r = run(command, "--precision", "int4")
    assert r.exit_code == 2 and "Invalid value for '--precision'" in r.output and "'int4' is not one of" in r.output
    r = run(command, *(["a query"] if command == "search" else []), env={config.PRECISION_ENV: "fp16"})
    assert r.exit_code == 2 and "XLSEARCH_PRECISION" in r.output and "'fp16' is not one of" in r.output


def test_embed_at_int8(heavy_model_dir, fp32):
    lines = "".join(json.dumps({"text": t, "kind": "query"}) + "\n" for t in TEXTS[:4])
    r = CliRunner().invoke(cli, ["-q", "embed", "--model", str(heavy_model_dir), "--precision", "int8"], input=lines)
    assert r.exit_code == 0, r.output
    vecs = np.array([json.loads(line) for line in r.stdout.splitlines()], np.float32)
    exact = fp32.encode(TEXTS[:4], "query")
    assert cosines(vecs, exact).min() > MIN_COSINE and np.abs(vecs - exact).max() > 1e-4


def test_eval_and_the_web_engine_report_their_precision(heavy_model_dir, tmp_path, monkeypatch):
    from web.app import Engine

    monkeypatch.setenv("XLSEARCH_HOME", str(tmp_path / "home"))
    data = tmp_path / "dev"
    data.mkdir()
    (data / "tiny.tsv").write_text("".join(f"{e}\t{z}\n" for e, z in zip(TEXTS[:2] * 6, TEXTS[2:4] * 6)), encoding="utf-8")
    r = run("eval", "--model", heavy_model_dir, "--data", data, "--precision", "int8", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["precision"] == "int8"
    assert run("eval", "--model", heavy_model_dir, "--data", data).stdout.startswith("model: heavy-encoder (fp32)")

    db = tmp_path / "idx"
    (tmp_path / "a.md").write_text("the quick brown fox", encoding="utf-8")
    assert run("index", tmp_path / "a.md", "--db", db, "--model", heavy_model_dir).exit_code == 0
    engine = Engine.open(db, precision="int8")
    try:
        assert engine.index.encoder.precision == "int8" and engine.search("fox", k=1)
    finally:
        engine.index.close()


def test_shared_input_divides_once_per_tensor_and_never_hands_out_another_batchs():
    from models.int8 import SharedInput

    shared = SharedInput(torch.tensor([0.5, 2.0]), readers=3)
    x1, x2 = torch.tensor([[2.0, 2.0]]), torch.tensor([[4.0, 4.0]])
    first = shared.divided(x1)
    assert shared.divided(x1) is first, "the second reader of the same tensor reuses the division"
    assert torch.equal(shared.divided(x2), torch.tensor([[2.0, 8.0]])), "another tensor (another thread's batch)"
    again = shared.divided(x1)
    assert torch.equal(again, torch.tensor([[1.0, 4.0]]))
    assert shared.divided(x1) is again and shared.divided(x1) is again
    assert shared.last is None, "nothing held once every reader has had it"
