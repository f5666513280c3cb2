"""End-to-end through the CLI (click's runner in-process; one real subprocess for the script)."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from cli import cli
from tests.tiny_model import build_tiny_model


@pytest.fixture
def run(tiny_model_dir):
    def _run(*args, input=None):
        result = CliRunner().invoke(cli, ["-q", *map(str, args)], input=input, catch_exceptions=False)
        return result

    return _run


@pytest.fixture
def docs(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "en.md").write_text("# Fox\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")
    (root / "zh.md").write_text("# 狐狸\n\n快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    (root / "rows.jsonl").write_text('{"id": "r1", "text": "search engines rank documents"}\n', encoding="utf-8")
    return root


def test_index_search_info_round_trip(run, docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    r = run("index", docs, "--db", db, "--model", tiny_model_dir, "--id-field", "id", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 3 and summary["chunks"] == 3 and summary["skipped"] == []

    # the index remembers its model: no --model needed from here on
    r = run("search", "快速的棕色狐狸跳过了懒狗。", "--db", db, "--json", "-k", "2")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert hits[0]["path"].endswith("zh.md") and hits[0]["lang"] == "zh" and hits[0]["title"] == "狐狸"
    assert len(hits) == 2

    r = run("search", "the quick brown fox", "--db", db, "--lang", "zh", "--json")
    assert {h["lang"] for h in json.loads(r.stdout)["hits"]} == {"zh"}

    r = run("search", "search engines rank documents", "--db", db)
    assert r.exit_code == 0 and "rows.jsonl [r1]" in r.stdout and " 1. [en]" in r.stdout

    r = run("info", "--db", db, "--json")
    info = json.loads(r.stdout)
    assert info["documents_by_lang"] == {"en": 2, "zh": 1} and info["dim"] == 32 and info["vectors_in_sync"]
    r = run("info", "--db", db)
    assert "documents  3 (2 en, 1 zh)" in r.stdout


def test_index_type_is_chosen_switched_and_shown(run, docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir, "--index-type", "flat16").exit_code == 0
    info = json.loads(run("info", "--db", db, "--json").stdout)
    assert info["index_type"] == "flat16" and info["vectors_in_sync"]
    def top(query):
        return json.loads(run("search", query, "--db", db, "--json", "-k", "1").stdout)["hits"][0]

    before = top("快速的棕色狐狸跳过了懒狗。")
    assert before["path"].endswith("zh.md")
    r = run("index", "--db", db, "--index-type", "flat", "--json")  # no paths: only the vectors are rebuilt
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 0
    info = json.loads(run("info", "--db", db, "--json").stdout)
    assert info["index_type"] == "flat" and info["vectors_in_sync"]
    after = top("快速的棕色狐狸跳过了懒狗。")
    assert after["path"] == before["path"] and after["score"] == pytest.approx(before["score"], abs=2e-3)
    r = run("index", "--db", tmp_path / "new", "--index-type", "flat16")  # no index to change: still a mistake
    assert r.exit_code == 2 and "nothing to index" in r.output and not (tmp_path / "new").exists()


def test_embed_reads_json_lines_and_keeps_order(run, tiny_model_dir, tiny_encoder):
    lines = '{"text": "the lazy dog", "kind": "query"}\n\n{"text": "快速的狐狸"}\n{"text": "the lazy dog"}\n'
    r = run("embed", "--model", tiny_model_dir, input=lines)
    assert r.exit_code == 0, r.output
    vectors = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)
    expected = tiny_encoder.encode(["快速的狐狸"], "passage")[0]
    assert max(abs(a - b) for a, b in zip(vectors[1], expected)) < 1e-5
    assert vectors[0] != vectors[2], "query and passage prompts differ"


@pytest.mark.parametrize(
    "lines, message",
    [
        ('{"text": "ok"}\n{"text": oops}\n', "stdin line 2: invalid JSON"),
        ('{"txt": "x"}\n', 'stdin line 1: expected an object with a string "text"'),
        ('{"text": "x", "kind": "doc"}\n', "stdin line 1: kind must be 'query' or 'passage', not 'doc'"),
    ],
)
def test_embed_bad_lines(run, tiny_model_dir, lines, message):
    r = run("embed", "--model", tiny_model_dir, input=lines)
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip() == f"error: {message}" or r.stderr.startswith(f"error: {message}")


def test_user_mistakes_are_one_line_errors_and_leave_the_index_alone(run, docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir).exit_code == 0
    snapshot = {p.name: p.read_bytes() for p in db.iterdir() if p.name != "write.lock"}

    cases = [
        (("index", tmp_path / "missing", "--db", db), 2, "missing: no such file or folder"),
        (("search", "   ", "--db", db), 2, "empty query"),
        (("search", "x", "--db", db, "-k", "0"), 2, "-k must be between 1 and 1000"),
        (("search", "x", "--db", tmp_path / "nowhere"), 2, "no index at"),
        (("index", docs, "--db", db, "--model", tmp_path / "no-model"), 1, "model folder not found"),
    ]
    for args, code, message in cases:
        r = run(*args)
        assert r.exit_code == code, (args, r.output)
        assert message in r.stderr and "Traceback" not in r.output
        assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot == {p.name: p.read_bytes() for p in db.iterdir() if p.name != "write.lock"}


def test_wrong_model_for_an_index_is_refused(run, docs, tmp_path, tiny_model_dir):
    # same architecture and name, different weights → different vectors
    other_model = build_tiny_model(tmp_path / "other")
    weights = other_model / "model.safetensors"
    state = load_file(weights)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in state.items()}, weights)
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir).exit_code == 0
    r = run("search", "fox", "--db", db, "--model", other_model)
    assert r.exit_code == 1 and "built with model 'tiny-encoder'" in r.stderr and f"--model {tiny_model_dir}" in r.stderr
    r = run("index", docs, "--db", db, "--model", other_model)
    assert r.exit_code == 1 and "built with model" in r.stderr


def test_every_command_has_help(run):
    for cmd in (["--help"], ["index", "--help"], ["search", "--help"], ["info", "--help"], ["embed", "--help"], ["model", "convert", "--help"]):
        r = run(*cmd)
        assert r.exit_code == 0 and "Usage:" in r.stdout


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "search", "", "--db", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: empty query — type some words to search for"


def test_eval_on_a_tiny_set_with_known_answers(run, tiny_model_dir, tmp_path):
    # identical text on both sides: query-mode bitext must be perfect, whatever the weights
    # (the passage-mode metrics depend on the random weights, so only their range is checked)
    data = tmp_path / "dev"
    data.mkdir()
    lines = [f"the quick brown fox {i} jumps. over the lazy dog {i} again" for i in range(30)]
    (data / "same.tsv").write_text("".join(f"{t}\t{t}\n" for t in lines), encoding="utf-8")
    r = run("eval", "--model", tiny_model_dir, "--data", data, "--json")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)["sets"]
    assert row["pairs"] == 30 and row["bitext_en_zh"] == row["bitext_zh_en"] == 1.0
    assert all(0.0 <= v <= 1.0 for k, v in row.items() if k.startswith(("bias", "mrr", "r10")))
    r = run("eval", "--model", tiny_model_dir, "--data", tmp_path / "none")
    assert r.exit_code == 2 and "no such folder" in r.stderr


def test_model_center_writes_a_centered_model(run, tiny_model_dir, tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    (train / "a.tsv").write_text("".join(f"the lazy dog {i}\t懒狗 {i}\n" for i in range(40)), encoding="utf-8")
    out = tmp_path / "centered"
    means = tmp_path / "means.npz"
    r = run("model", "center", "--model", tiny_model_dir, "--train", train, "--per-file", 20, "--out", out, "--means-out", means)
    assert r.exit_code == 0, r.output
    types = [m["type"].rsplit(".", 1)[1] for m in json.loads((out / "modules.json").read_text())]
    assert r.stdout.strip() == str(out) and types == ["Transformer", "Pooling", "Normalize", "LanguageCentering", "Normalize"]
    r = run("embed", "--model", out, input='{"text": "懒狗"}\n')
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 32
    from models.centering import load_means

    assert set(load_means(means)) == {("en", "query"), ("en", "passage"), ("zh", "query"), ("zh", "passage")}
    # centering a centered folder would take means through the first centering and stack a second
    again = tmp_path / "again"
    r = run("model", "center", "--model", out, "--train", train, "--per-file", 20, "--out", again)
    assert r.exit_code == 2 and "is already language-centered" in r.stderr and "--model trained" in r.stderr
    assert "Traceback" not in r.output and not again.exists()


def test_lexical_and_hybrid_modes_find_exact_identifiers(run, tmp_path, tiny_model_dir):
    root = tmp_path / "code"
    root.mkdir()
    (root / "a.md").write_text("# Config\n\nSet frobnicate_level=42 in 配置文件 to enable it.", encoding="utf-8")
    (root / "b.md").write_text("# Other\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")
    db = tmp_path / "idx"
    assert run("index", root, "--db", db, "--model", tiny_model_dir).exit_code == 0
    for mode in ("lexical", "hybrid"):
        r = run("search", "frobnicate_level", "--db", db, "--mode", mode, "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["hits"][0]["path"].endswith("a.md"), mode
    r = run("search", "配置", "--db", db, "--mode", "lexical", "--json")
    assert [h["path"][-4:] for h in json.loads(r.stdout)["hits"]] == ["a.md"]
    (root / "a.md").unlink()
    assert run("index", root, "--db", db, "--prune").exit_code == 0
    r = run("search", "frobnicate_level", "--db", db, "--mode", "lexical", "--json")
    assert json.loads(r.stdout)["hits"] == []


def test_search_with_summary(run, docs, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db, "--model", tiny_model_dir).exit_code == 0
    r = run("search", "the quick brown fox", "--db", db, "--summary", "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["summary"]["sentences"] and all(f"[{s['cite']}]" in body["summary"]["text"] for s in body["summary"]["sentences"])
    r = run("search", "the quick brown fox", "--db", db, "--summary")
    assert r.stdout.startswith("Summary: ")
    r = run("search", "fox", "--db", db, "--summarizer", tmp_path)
    assert r.exit_code == 1 and "not a transformers model folder" in r.stderr


def test_eval_without_dev_data_says_where_the_default_lives(run, tmp_path, monkeypatch):
    monkeypatch.setenv("XLSEARCH_DEV_DATA", str(tmp_path / "missing"))
    r = run("eval")
    assert r.exit_code == 2 and "$XLSEARCH_DEV_DATA is" in r.stderr and "pass --data DIR" in r.stderr
    monkeypatch.delenv("XLSEARCH_DEV_DATA")
    monkeypatch.setattr("core.pairs._shared_parallel_dir", lambda: tmp_path / "nowhere")
    r = run("eval")
    assert r.exit_code == 2 and "exists only beside a development checkout" in r.stderr


def test_search_dates_before_year_2_are_before_every_file(run, tiny_model_dir, tmp_path):
    (tmp_path / "a.md").write_text("the quick brown fox", encoding="utf-8")
    db = tmp_path / "idx"
    assert run("index", tmp_path / "a.md", "--db", db).exit_code == 0
    after = run("search", "fox", "--db", db, "--after", "0001-01-01", "--json")
    assert after.exit_code == 0 and len(json.loads(after.stdout)["hits"]) == 1
    before = run("search", "fox", "--db", db, "--before", "0001-01-01", "--json")
    assert before.exit_code == 0 and json.loads(before.stdout)["hits"] == []


def test_search_shows_the_score_it_orders_by(run, tiny_model_dir, tmp_path):
    import re

    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(["the quick brown fox", "a lazy dog sleeps", "search engines rank documents", "狐狸跳过了懒狗"]):
        (docs / f"{i}.md").write_text(text, encoding="utf-8")
    (docs / "copy.md").write_text("the quick brown fox", encoding="utf-8")  # the same file twice: one hit
    db = tmp_path / "idx"
    assert run("index", docs, "--db", db).exit_code == 0
    r = run("search", "brown fox", "--db", db)
    shown = [float(s) for s in re.findall(r"^ ?\d+\. \[\w+\]\s+(-?\d+\.\d\d)  ", r.stdout, re.M)]
    assert len(shown) == 4 and shown == sorted(shown, reverse=True)
    assert "also at " in r.stdout
