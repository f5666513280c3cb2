"""Language centering as a model module: maths, language/mode detection, save/load."""

import numpy as np
import torch

from models.centering import LanguageCentering, drop_centering, is_centered, language_means, write_centered_model
from models.torch_encoder import TorchEncoder


def test_module_subtracts_the_mean_of_the_detected_language_and_mode(tiny_encoder):
    tok = tiny_encoder.tokenizer
    dim = tiny_encoder.dim
    means = {(lang, kind): np.full(dim, v, np.float32) for (lang, kind), v in
             {("en", "query"): 1.0, ("en", "passage"): 2.0, ("zh", "query"): 3.0, ("zh", "passage"): 4.0}.items()}
    module = LanguageCentering.from_means(tok, means, {"query": "query: ", "passage": "passage: "})
    texts = ["query: the lazy dog", "passage: the lazy dog", "query: 搜索引擎", "passage: 快速的狐狸 fox", "passage: 12345"]
    enc = tok(texts, padding=True, return_tensors="pt")
    features = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "sentence_embedding": torch.zeros(len(texts), dim)}
    out = module(features)["sentence_embedding"][:, 0].tolist()
    assert out == [-1.0, -2.0, -3.0, -4.0, -3.0]  # "other" (no letters) gets the mean of en and zh


def test_centered_model_loads_with_sentence_transformers(tiny_model_dir, tiny_encoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    en = ["the quick brown fox", "the lazy dog", "search engines rank documents"]
    zh = ["快速的棕色狐狸", "懒狗", "搜索引擎按照相关性排序"]
    means = language_means(tiny_encoder, en, zh)
    module = LanguageCentering.from_means(tiny_encoder.tokenizer, means, tiny_encoder.prompts)
    dest = write_centered_model(tiny_model_dir, tmp_path / "centered", module)
    assert (tiny_model_dir / "modules.json").read_text().count("LanguageCentering") == 0, "base untouched"

    centered = TorchEncoder(dest)
    ours = centered.encode(zh, "passage")
    theirs = SentenceTransformer(str(dest), trust_remote_code=True).encode(zh, prompt_name="passage")
    assert np.allclose(ours, theirs, atol=1e-5)
    # by construction, the centered vectors of the sample average to (almost) nothing
    raw = tiny_encoder.encode(zh, "passage")
    expected = raw - means[("zh", "passage")]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(ours, expected, atol=1e-5)
    assert centered.identity.same_model(tiny_encoder.identity) is False


def test_a_folder_written_before_the_layered_layout_still_loads(tiny_model_dir, tiny_encoder, tmp_path):
    """Folders converted or trained by earlier versions name `xlsearch.centering.LanguageCentering`."""
    import json
    import shutil

    means = language_means(tiny_encoder, ["the quick brown fox", "the lazy dog"], ["快速的棕色狐狸", "懒狗"])
    module = LanguageCentering.from_means(tiny_encoder.tokenizer, means, tiny_encoder.prompts)
    dest = write_centered_model(tiny_model_dir, tmp_path / "centered", module)
    modules = json.loads((dest / "modules.json").read_text())
    assert [m["type"] for m in modules if "LanguageCentering" in m["type"]] == ["models.centering.LanguageCentering"]
    legacy = tmp_path / "legacy"
    shutil.copytree(dest, legacy)
    for m in modules:
        m["type"] = m["type"].replace("models.centering.", "xlsearch.centering.")
    (legacy / "modules.json").write_text(json.dumps(modules))
    texts = ["快速的棕色狐狸", "the lazy dog"]
    assert np.allclose(TorchEncoder(legacy).encode(texts), TorchEncoder(dest).encode(texts), atol=1e-6)


def test_drop_centering_gives_back_the_uncentered_model(tiny_model_dir, tiny_encoder, tmp_path):
    """A folder built from a centered one can shed the centering, and encodes as the base again."""
    import shutil

    means = language_means(tiny_encoder, ["the lazy dog", "a quick fox"], ["懒狗", "快速的狐狸"])
    centered = write_centered_model(tiny_model_dir, tmp_path / "centered", LanguageCentering.from_means(tiny_encoder.tokenizer, means, tiny_encoder.prompts))
    copy = tmp_path / "copy"
    shutil.copytree(centered, copy)
    assert is_centered(copy) and drop_centering(copy) and not is_centered(copy)
    assert not drop_centering(copy), "nothing left to drop"
    texts = ["the lazy dog", "懒狗"]
    assert np.allclose(TorchEncoder(copy).encode(texts, "query"), tiny_encoder.encode(texts, "query"), atol=1e-6)
    assert is_centered(centered), "the folder it was copied from is untouched"
