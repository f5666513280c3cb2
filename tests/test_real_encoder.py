"""The real default encoder end to end: cross-lingual retrieval through the CLI.

Each topic exists in only one language, next to distractors in both languages, so the query
must cross languages to find it — in the mixed pool too, where the bare base encoder's
same-language bias put an English distractor first for one of these queries (see `xlsearch
eval`); the default model's language centering removes that.
Texts written for this test (project licence).
"""

import json

import pytest
from click.testing import CliRunner

from cli import cli

ZH_ONLY = {
    "crop.md": "# 裁剪图像\n\n使用裁剪工具可以去掉图像边缘不需要的部分。先在图像上拖出一个矩形，然后按回车键确认裁剪。",
    "bread.md": "# 烤面包\n\n把面粉、水、酵母和盐混合成面团，发酵两个小时后放进预热到二百度的烤箱烤四十分钟。",
    "train.md": "# 高速铁路\n\n高速列车的运行速度可以超过每小时三百公里，大大缩短了城市之间的旅行时间。",
}
EN_ONLY = {
    "backup.md": "# Backups\n\nKeep at least three copies of important files on two different media, with one copy stored off site.",
    "cats.md": "# Cats\n\nDomestic cats sleep for twelve to sixteen hours a day and are most active at dawn and dusk.",
    "python.md": "# Virtual environments\n\nCreate an isolated Python environment with python -m venv, then activate it before installing packages.",
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, default_model_dir):
    root = tmp_path_factory.mktemp("mixed")
    for name, text in {**ZH_ONLY, **EN_ONLY}.items():
        (root / name).write_text(text, encoding="utf-8")
    db = root.parent / (root.name + "-idx")
    r = CliRunner().invoke(cli, ["-q", "index", str(root), "--db", str(db), "--model", str(default_model_dir)])
    assert r.exit_code == 0, r.output
    return db


def hits(db, query, *args):
    r = CliRunner().invoke(cli, ["-q", "search", query, "--db", str(db), "--json", "-k", "3", *args])
    assert r.exit_code == 0, r.output
    return [(h["path"].rsplit("/", 1)[1], h["lang"]) for h in json.loads(r.stdout)["hits"]]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("how do I crop an image", "crop.md"),
        ("baking bread in the oven", "bread.md"),
        ("high-speed rail travel time between cities", "train.md"),
    ],
)
def test_english_query_finds_the_chinese_document(indexed, query, expected):
    assert hits(indexed, query, "--lang", "zh")[0] == (expected, "zh")
    assert hits(indexed, query)[0] == (expected, "zh")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("重要文件的备份", "backup.md"),
        ("猫每天睡多长时间", "cats.md"),
        ("如何创建 Python 虚拟环境", "python.md"),
    ],
)
def test_chinese_query_finds_the_english_document(indexed, query, expected):
    assert hits(indexed, query, "--lang", "en")[0] == (expected, "en")
    assert hits(indexed, query)[0] == (expected, "en")


def test_the_default_models_onnx_export_gives_torchs_vectors(default_model_dir):
    """The query path runs on ONNX Runtime by default; its vectors must be PyTorch's."""
    from models.onnx_encoder import OnnxEncoder
    from models.torch_encoder import TorchEncoder

    texts = [*ZH_ONLY.values(), *EN_ONLY.values(), "how do I crop an image", "高速列车", " ".join(EN_ONLY.values()) * 8]
    onnx, torch_ = OnnxEncoder(default_model_dir), TorchEncoder(default_model_dir)
    for kind in ("query", "passage"):
        cosines = (onnx.encode(texts, kind) * torch_.encode(texts, kind)).sum(axis=1)
        assert cosines.min() > 0.9999, (kind, cosines)


@pytest.mark.parametrize("query", ["how do I crop an image", "高速列车"])
def test_both_runtimes_rank_the_same_hits(indexed, query):
    def ranked(runtime):
        r = CliRunner().invoke(cli, ["-q", "search", query, "--db", str(indexed), "--json", "--runtime", runtime])
        assert r.exit_code == 0, r.output
        return [(h["path"], h["score"]) for h in json.loads(r.stdout)["hits"]]

    onnx, torch_ = ranked("onnx"), ranked("torch")
    assert [path for path, _ in onnx] == [path for path, _ in torch_]
    assert all(abs(a - b) < 1e-3 for (_, a), (_, b) in zip(onnx, torch_))
