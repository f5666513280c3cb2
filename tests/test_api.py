"""The Python API (`xlsearch.Index`): the contract the CLI and the web app rely on, on a tiny
model; and the README's example, run as written on part of the demo corpus with the default model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xlsearch
from core.choices import FILE_TYPES, INDEX_TYPES, LANG_FILTERS, MODES
from core.errors import IndexBusyError, IndexMismatchError, InputError
from indexer.filetypes import FILE_TYPES as READER_TYPES
from indexer.markdown import markdown_to_text
from search.searcher import Filters, SearchRequest

ROOT = Path(__file__).resolve().parents[1]
DOCS = {
    "fox.md": "# The fox\n\nThe quick brown fox jumps over the lazy dog.",
    "zh.md": "# 狐狸\n\n快速的棕色狐狸跳过了懒狗。",
    "version.txt": "Release notes for version 2.4 of the search engine.",
}


@pytest.fixture()
def folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


def test_create_add_search_info_close(folder, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    with xlsearch.Index(db, tiny_model_dir, create=True) as index:
        summary = index.add([folder])
        assert (summary.added, summary.unchanged, summary.skipped) == (3, 0, [])
        hits = index.search("quick brown fox", k=3)
        assert {h.path for h in hits} == {str(folder / name) for name in DOCS}
        assert [h.rank for h in hits] == [1, 2, 3]
        info = index.info()
        assert info["documents"] == 3 and info["vector_store"] == "faiss" and info["db"] == str(db)
        doc = index.document(hits[0].doc_id)
        name = Path(doc["path"]).name
        assert doc["text"] == (markdown_to_text(DOCS[name]) if name.endswith(".md") else DOCS[name])
        start, end = index.chunk_span(hits[0].doc_id, hits[0].chunk_id)
        assert doc["text"][start:end]
        assert index.document(10**9) is None
    again = xlsearch.Index(db)  # reopened without a model: the index's own
    try:
        assert again.add([folder]).unchanged == 3  # incremental, as the CLI
        assert again.encoder.path == Path(tiny_model_dir)
    finally:
        again.close()


def test_a_search_request_is_the_web_apps_request(folder, tmp_path, tiny_model_dir):
    with xlsearch.Index(tmp_path / "idx", tiny_model_dir, create=True) as index:
        index.add([folder])
        request = SearchRequest("fox", k=5, lang="zh", mode="dense", filters=Filters(file_types=("markdown",)))
        assert [Path(h.path).name for h in index.search(request)] == ["zh.md"]
        assert index.search("fox", k=5, lang="zh", mode="dense") == index.search(request)
        batch = index.search_batch([request, SearchRequest("   "), SearchRequest("2.4", mode="lexical")])
        assert batch[0] == index.search(request)
        assert isinstance(batch[1], InputError)
        assert [Path(h.path).name for h in batch[2]] == ["version.txt"]
        summary = index.summarize("fox")
        assert summary.sentences and all(s.cite >= 1 for s in summary.sentences)


def test_mistakes_are_one_error_each(folder, tmp_path, tiny_model_dir):
    with pytest.raises(InputError, match="no index at"):
        xlsearch.Index(tmp_path / "nothing")
    with xlsearch.Index(tmp_path / "idx", tiny_model_dir, create=True) as index:
        with pytest.raises(InputError, match="no such file"):
            index.add([tmp_path / "missing"])
        assert not (tmp_path / "idx").exists()  # a failed add wrote nothing
        index.add([folder])
        with pytest.raises(InputError, match="empty query"):
            index.search(" ")
        with pytest.raises(InputError, match="--mode must be one of"):
            index.search("fox", mode="fuzzy")
        with xlsearch.Index(tmp_path / "idx", tiny_model_dir) as second:
            from storage.store import Store

            with Store.open_for_writing(tmp_path / "idx", second.encoder.identity):  # another writer holds the lock
                with pytest.raises(IndexBusyError):
                    second.add([folder])


def test_another_model_is_refused_before_anything_is_written(folder, tmp_path, tiny_model_dir):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    other_model = tmp_path / "other" / tiny_model_dir.name  # same name and shape, other weights
    shutil.copytree(tiny_model_dir, other_model)
    weights = other_model / "model.safetensors"
    torch.manual_seed(1)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in load_file(weights).items()}, weights)
    db = tmp_path / "idx"
    with xlsearch.Index(db, tiny_model_dir, create=True) as index:
        index.add([folder])
        before = index.info()
    (folder / "new.md").write_text("a new page", encoding="utf-8")
    with xlsearch.Index(db, other_model) as other:
        with pytest.raises(IndexMismatchError):
            other.search("fox")
        with pytest.raises(IndexMismatchError):
            other.add([folder])
        assert other.info() == {**before, "size_bytes": other.info()["size_bytes"]}


def test_one_source_for_each_choice():
    """The CLI's choices and the readers' types are the ones core.choices defines."""
    from click.testing import CliRunner

    from cli import cli

    assert set(READER_TYPES.values()) == set(FILE_TYPES)
    usage = CliRunner().invoke(cli, ["search", "--help"]).output + CliRunner().invoke(cli, ["index", "--help"]).output
    for choices in (LANG_FILTERS, MODES, FILE_TYPES, INDEX_TYPES):
        assert "[" + "|".join(choices) + "]" in usage.replace("\n", "").replace(" ", "")


def test_importing_the_api_loads_no_model_runtime():
    code = "import sys, xlsearch; print(json.dumps(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, default_model_dir):
    """On the demo corpus's network and package pages (both languages), with the default model."""
    corpus = tmp_path / "demo" / "corpus"
    for lang in ("en", "zh"):
        (corpus / lang).mkdir(parents=True)
        for page in sorted((ROOT / "demo" / "corpus" / lang).glob("*.md")):
            if re.search(r"network|package|apt", page.name):
                (corpus / lang / page.name).write_bytes(page.read_bytes())
    out = subprocess.run([sys.executable, "-c", _readme_example()], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    hits = [line.split() for line in lines if re.match(r"^[1-5] (en|zh) ", line)]
    assert [int(h[0]) for h in hits] == [1, 2, 3, 4, 5]
    assert {h[1] for h in hits} == {"en", "zh"}  # an English query finds pages in both languages
    assert re.search(r"\[\d\]", out.stdout)  # the summary cites its hits
    assert json.loads(lines[-1].replace("'", '"')) == {"en": len(list((corpus / "en").iterdir())), "zh": len(list((corpus / "zh").iterdir()))}
