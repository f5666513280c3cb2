"""Vocabulary pruning (models/vocab.py, `xlsearch model prune-vocab`).

The claim under test: a pruned model gives the same tokens (renumbered) and the same vectors as
the original on text made of English/Chinese characters, from a smaller vocabulary, and still
encodes anything else. Fast tests use a tiny random-weight model whose vocabulary was trained on
English, Chinese *and* other scripts (so there is something to prune), with the converter's
unknown-character splitter and a language-centering module like the default's; the slow test
prunes the real default encoder and compares it on the dev data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from cli import cli
from models.vocab import allowed_chars, prune_vocabulary, text_is_covered

FOREIGN = [
    "Привет, как дела? Быстрая коричневая лиса",
    "Γειά σου κόσμε, η γρήγορη καφέ αλεπού",
    "日本語のテキストとカタカナ",
    "안녕하세요 세계",
    "emoji 😀🎉 party",
]
EN_ZH = [
    "the quick brown fox jumps over the lazy dog",
    "Search engines rank documents by relevance; install the package, then index the folder!",
    "快速的棕色狐狸跳过了懒狗。",
    "搜索引擎按照与查询的相关性对文档进行排序（测试）：图层、蒙版",
    "mixed 中英文 text: 0123456789 (brackets) [x] {y} <z> \"quoted\" 'single' -_/\\@#$%^&*+=~`|",
    "café naïve résumé ＡＢＣ　全角，标点！",
    "   leading and  double   spaces and trailing   ",
    "a",
    "",
]


@pytest.fixture(scope="module")
def multi_model_dir(tmp_path_factory) -> Path:
    """Tiny model: vocabulary over en/zh + other scripts, Split pre-tokeniser, centering."""
    from models.centering import KINDS, LANGS, LanguageCentering, write_centered_model
    from models.torch_encoder import TorchEncoder
    from models.vocab import _char_class
    from tests import tiny_model

    root = tmp_path_factory.mktemp("multi")
    plain = tiny_model.build_tiny_model(root, corpus=tiny_model._CORPUS + FOREIGN)
    # the converter's splitter: characters no piece contains become one <unk> each
    spec = json.loads((plain / "tokenizer.json").read_text(encoding="utf-8"))
    specials = {t["id"] for t in spec["added_tokens"]}
    known = {c for i, (p, _) in enumerate(spec["model"]["vocab"]) if i not in specials for c in p}
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        spec["pre_tokenizer"],
        {"type": "Split", "pattern": {"Regex": _char_class(known)}, "behavior": "Isolated", "invert": False},
    ]}
    (plain / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    encoder = TorchEncoder(plain)
    rng = np.random.default_rng(0)
    means = {(lang, kind): rng.normal(size=encoder.dim).astype(np.float32) * 0.1 for lang in LANGS for kind in KINDS}
    module = LanguageCentering.from_means(encoder.tokenizer, means, encoder.prompts)
    return write_centered_model(plain, root / "multi-centered", module)


@pytest.fixture(scope="module")
def pruned_dir(multi_model_dir, tmp_path_factory) -> Path:
    return prune_vocabulary(multi_model_dir, tmp_path_factory.mktemp("pruned") / "model")


def _vocab(folder: Path) -> list[str]:
    return [p for p, _ in json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]]


def test_vocabulary_is_smaller_and_consistent(multi_model_dir, pruned_dir):
    before, after = _vocab(multi_model_dir), _vocab(pruned_dir)
    assert len(after) < len(before)
    assert after[:5] == before[:5] == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # special ids unchanged
    assert not any(c in piece for piece in after for c in "иλのテ안😀")
    assert set(after) <= set(before)
    assert [p for p in before if p in set(after)] == after  # old order kept
    weights = load_file(str(pruned_dir / "model.safetensors"))
    assert weights["embeddings.word_embeddings.weight"].shape[0] == len(after)
    assert json.loads((pruned_dir / "config.json").read_text())["vocab_size"] == len(after)
    centering = load_file(str(pruned_dir / "3_LanguageCentering" / "centering.safetensors"))
    assert centering["han"].shape[0] == len(after)
    info = json.loads((pruned_dir / "xlsearch_model.json").read_text())["vocab_pruning"]
    assert info["pieces_before"] == len(before) and info["pieces_kept"] == len(after)
    assert info["source"] == str(multi_model_dir.resolve()) and any("CJK Unified" in r for r in info["allowed_ranges"])
    assert (multi_model_dir / "model.safetensors").stat().st_nlink >= 1 and (pruned_dir / "1_Pooling").is_dir()


def test_same_tokens_and_vectors_on_en_zh_text(multi_model_dir, pruned_dir):
    from sentence_transformers import SentenceTransformer

    from models.torch_encoder import TorchEncoder

    old, new = TorchEncoder(multi_model_dir), TorchEncoder(pruned_dir)
    assert all(text_is_covered(t, allowed_chars()) for t in EN_ZH)
    old_ids, new_ids = old._ids(EN_ZH), new._ids(EN_ZH)
    old_vocab, new_vocab = _vocab(multi_model_dir), _vocab(pruned_dir)
    for a, b in zip(old_ids, new_ids):
        assert [old_vocab[i] for i in a] == [new_vocab[i] for i in b]
    # renumbered ids point at the same embedding rows
    e_old = load_file(str(multi_model_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    e_new = load_file(str(pruned_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    for a, b in zip(old_ids, new_ids):
        assert torch.equal(e_old[a], e_new[b])
    for kind in ("query", "passage"):
        v_old, v_new = old.encode(EN_ZH, kind), new.encode(EN_ZH, kind)
        assert torch.allclose(torch.from_numpy(v_old), torch.from_numpy(v_new), atol=1e-6, rtol=0)
    # plain sentence-transformers loads it too (the fast tokenizer: no sentencepiece file ships)
    assert not (pruned_dir / "sentencepiece.bpe.model").exists()
    st = SentenceTransformer(str(pruned_dir), trust_remote_code=True)
    assert type(st.tokenizer).__name__ != "XLMRobertaTokenizer"
    v_st = st.encode(EN_ZH[:4], prompt_name="passage", normalize_embeddings=True)
    assert np.abs(v_st - old.encode(EN_ZH[:4], "passage")).max() < 1e-5


def test_other_scripts_still_encode(multi_model_dir, pruned_dir):
    from models.torch_encoder import TorchEncoder

    new = TorchEncoder(pruned_dir)
    vectors = new.encode(FOREIGN + ["naïve 😀 mixed Привет 中文"], "passage")
    assert np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    tokens = new.tokenizer.convert_ids_to_tokens(new._ids(["Привет"])[0])
    assert tokens.count("<unk>") == len("Привет")  # one <unk> per character, as the converter does
    assert new.count_tokens(["emoji 😀🎉 party"])[0] > 0


def test_cli_prune_vocab(multi_model_dir, tmp_path):
    out = tmp_path / "cli-pruned"
    r = CliRunner().invoke(cli, ["-q", "model", "prune-vocab", "--model", str(multi_model_dir), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["out"] == str(out) and summary["pieces_kept"] < summary["pieces_before"]
    assert summary["weights_bytes_after"] < summary["weights_bytes_before"]
    assert (out / "tokenizer.json").exists()
    r = CliRunner().invoke(cli, ["model", "prune-vocab", "--help"])
    assert r.exit_code == 0 and "English/Chinese" in r.stdout and "<unk>" in r.stdout


@pytest.mark.parametrize("case", ["missing model", "out not empty", "out inside model", "out is a file"])
def test_cli_prune_vocab_errors(case, multi_model_dir, tmp_path):
    model, out = multi_model_dir, tmp_path / "out"
    if case == "missing model":
        model, code, message = tmp_path / "nope", 1, "model folder not found"
    elif case == "out not empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        code, message = 2, "already exists and is not empty"
    elif case == "out inside model":
        out, code, message = multi_model_dir / "sub", 2, "inside the model folder"
    else:
        out.write_text("mine")
        code, message = 2, "already exists and is not empty"
    before = sorted(p.name for p in multi_model_dir.iterdir())
    r = CliRunner().invoke(cli, ["-q", "model", "prune-vocab", "--model", str(model), "--out", str(out)])
    assert r.exit_code == code, r.output
    assert r.stderr.startswith("error: ") and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    assert sorted(p.name for p in multi_model_dir.iterdir()) == before
    if case == "out not empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_refuses_a_non_unigram_tokenizer(tmp_path, multi_model_dir):
    import shutil

    from core.errors import ModelError

    copy = tmp_path / "bpe"
    shutil.copytree(multi_model_dir, copy)
    spec = json.loads((copy / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["type"] = "BPE"
    (copy / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ModelError, match="not a sentencepiece Unigram"):
        prune_vocabulary(copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_default_model_pruned_matches_on_dev_data(default_model_dir, tmp_path):
    """The real default encoder: identical ids and vectors on dev sentences of allowed chars."""
    from core.pairs import default_dev_dir, read_pairs
    from models.torch_encoder import TorchEncoder

    dev = default_dev_dir()
    if not dev.is_dir():
        pytest.skip(f"no dev data at {dev}")
    pruned = prune_vocabulary(default_model_dir, tmp_path / "pruned")
    assert len(_vocab(pruned)) < 0.6 * 250_002
    texts = [t for path in sorted(dev.glob("*.tsv")) for pair in read_pairs(path, 25) for t in pair]
    assert len(texts) >= 300
    allowed = allowed_chars()
    covered = [text_is_covered(t, allowed) for t in texts]
    fraction = sum(covered) / len(texts)
    print(f"\n{sum(covered)}/{len(texts)} dev sentences ({fraction:.2%}) use only allowed characters")
    assert fraction >= 0.99
    old, new = TorchEncoder(default_model_dir), TorchEncoder(pruned)
    old_vocab, new_vocab = old.tokenizer.convert_ids_to_tokens, new.tokenizer.convert_ids_to_tokens
    for text, a, b, ok in zip(texts, old._ids(texts), new._ids(texts), covered):
        if ok:
            assert old_vocab(a) == new_vocab(b), text
    same = [t for t, ok in zip(texts, covered) if ok]
    for kind in ("query", "passage"):
        diff = np.abs(old.encode(same, kind) - new.encode(same, kind)).max()
        assert diff <= 1e-6, (kind, diff)
    assert new.name != old.name and "pruned" in new.name
