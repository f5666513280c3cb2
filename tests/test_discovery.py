"""Which files an index run reads: text found by content, --include/--exclude, .gitignore, and
skips reported per reason (files listed only with -v)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from core.config import IndexConfig
from core.errors import FileSkipped
from indexer.discovery import discover, holds_at_least
from indexer.filetypes import BINARY, SNIFF_BYTES, detect_type
from indexer.ignore import Ignorer, parse_rule
from indexer.readers import read_file
from indexer.summary import IndexSummary

GPL = "GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n\nEveryone is permitted to copy and distribute verbatim copies.\n"


def invoke(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)], catch_exceptions=False)


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


def found(root: Path, **config) -> tuple[set[str], IndexSummary]:
    """The files a run would read, relative to `root`, and the summary discovery left."""
    summary = IndexSummary()
    files = discover([root], summary, IndexConfig(**config))
    return {p.relative_to(root).as_posix() for p in files}, summary


# -- text by content ------------------------------------------------------------------------


def test_extensionless_and_unknown_suffix_text_is_text():
    assert detect_type(Path("README"), b"# Project\n\nread me") == "text"
    assert detect_type(Path("GPL-3"), GPL.encode()) == "text"
    assert detect_type(Path("app.conf"), "端口 = 8080\n".encode()) == "text"
    assert detect_type(Path("notes.md"), b"\x00\x01") == "markdown", "a known suffix decides without a look"
    [doc] = read_file(Path("LICENSE"), GPL.encode())
    assert doc.title == "GNU GENERAL PUBLIC LICENSE"


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("blob", b"ELF\x00\x01\x02 text", BINARY),
        ("core.1", b"\x01\x02\x03\x04\x05\x06" * 100, BINARY),
        ("empty", b"", "empty file"),
        ("photo.png", b"plain words", "unsupported file type '.png' (supported: .csv, .htm, .html, .jsonl, .markdown, .md, .pdf, .text, .txt, "
                                      "or any text file)"),
    ],
)
def test_what_is_not_text_is_skipped_with_the_reason(name, data, reason):
    with pytest.raises(FileSkipped) as caught:
        detect_type(Path(name), data)
    assert str(caught.value) == reason


def test_only_the_first_block_is_looked_at_and_it_may_end_inside_a_character():
    text = ("a" * (SNIFF_BYTES - 1) + "狐狸" * 10).encode()  # the block ends after the first byte of 狐
    assert detect_type(Path("README"), text) == "text"
    assert detect_type(Path("README"), b"x" * SNIFF_BYTES + b"\x00") == "text", "a NUL after the first block is not looked at"
    assert detect_type(Path("README"), "\ufeffutf-16 with a BOM".encode("utf-16-le")) == "text"


def test_a_folder_walk_takes_text_files_of_any_name(tmp_path):
    root = write(tmp_path / "doc", {
        "README": "read me", "LICENSE": GPL, "pkg/changelog": "1.0: first", "app.conf": "x = 1", "notes.1": ".TH NOTES 1",
        "blob": b"\x7fELF\x00\x00", "photo.png": b"\x89PNG\r\n\x1a\n", ".hidden": "secret",
    })
    files, summary = found(root)
    assert files == {"README", "LICENSE", "pkg/changelog", "app.conf", "notes.1"}
    assert summary.skipped == [(str(root / "blob"), BINARY)], "a binary suffix is passed over, binary content is said"
    assert summary.found == 6 and summary.excluded == 0


# -- --include / --exclude ------------------------------------------------------------------


def test_include_then_exclude_in_a_walk(tmp_path):
    root = write(tmp_path / "d", {"a.md": "a", "b.txt": "b", "sub/c.md": "c", "sub/draft.md": "d", "build/e.md": "e", "LOG": "l"})
    files, summary = found(root, include=("*.md",))
    assert files == {"a.md", "sub/c.md", "sub/draft.md", "build/e.md"} and summary.excluded == 2
    files, summary = found(root, include=("*.md",), exclude=("draft.md", "build"))
    assert files == {"a.md", "sub/c.md"} and summary.excluded == 4, "b.txt, LOG, sub/draft.md and the build folder"
    files, _ = found(root, include=("sub/*",))
    assert files == {"sub/c.md", "sub/draft.md"}, "patterns match the path under the root, too"
    files, summary = found(root, exclude=("*",))
    assert files == set() and summary.skipped == [] and summary.found == 0, "a walk's exclusions are counted, not listed"


def test_a_named_file_left_out_is_skipped_with_the_option(tmp_path):
    write(tmp_path, {"a.md": "a", "b.log": "b"})
    summary = IndexSummary()
    files = discover([tmp_path / "a.md", tmp_path / "b.log"], summary, IndexConfig(include=("*.md", "*.log"), exclude=("*.log",)))
    assert files == [tmp_path / "a.md"] and summary.excluded == 0
    assert summary.skipped == [(str(tmp_path / "b.log"), "excluded by --exclude")]
    summary = IndexSummary()
    discover([tmp_path / "b.log"], summary, IndexConfig(include=("*.md",)))
    assert summary.skipped == [(str(tmp_path / "b.log"), "not matched by --include")]


# -- .gitignore -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, path, is_dir, ignored",
    [
        ("*.log", "a/b/x.log", False, True),
        ("/todo.txt", "todo.txt", False, True),
        ("/todo.txt", "sub/todo.txt", False, None),
        ("doc/*.txt", "doc/a.txt", False, True),
        ("doc/*.txt", "doc/sub/a.txt", False, None),
        ("build/", "build", True, True),
        ("build/", "build", False, None),
        ("**/cache", "a/b/cache", True, True),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("out/**", "out/x/y", False, True),
        ("fil?.md", "file.md", False, True),
        ("fil?.md", "fil/.md", False, None),
        ("[ab].txt", "b.txt", False, True),
        ("[!ab].txt", "b.txt", False, None),
        ("\\#hash", "#hash", False, True),
        ("!keep.log", "keep.log", False, False),
    ],
)
def test_gitignore_patterns(tmp_path, pattern, path, is_dir, ignored):
    (tmp_path / ".gitignore").write_text(pattern + "\n", encoding="utf-8")
    [rules] = Ignorer().descend(tmp_path).files
    assert rules.verdict(tmp_path / path, is_dir) is ignored


def test_gitignore_blank_lines_and_comments_are_no_rules():
    assert parse_rule("") is None and parse_rule("   ") is None and parse_rule("# a comment") is None


def test_gitignore_in_a_walk_nested_negation_and_folders(tmp_path):
    root = write(tmp_path / "repo", {
        ".gitignore": "# build output\n\n*.log\n!keep.log\nbuild/\n/secret.md\n",
        "a.md": "a", "x.log": "x", "keep.log": "k", "secret.md": "s",
        "build/out.md": "o", "src/build": "a file called build", "src/secret.md": "not anchored here",
        "src/.gitignore": "*.md\n!README.md\n", "src/README.md": "r", "src/other.md": "o",
        "src/deep/x.log": "x", "src/deep/keep.log": "k",
    })
    files, summary = found(root)
    assert files == {"a.md", "keep.log", "src/build", "src/README.md", "src/deep/keep.log"}
    assert summary.skipped == [] and summary.excluded == 0, ".gitignored files are not counted as excluded"
    files, _ = found(root, gitignore=False)
    assert files == {
        "a.md", "x.log", "keep.log", "secret.md", "build/out.md", "src/build", "src/secret.md", "src/README.md", "src/other.md",
        "src/deep/x.log", "src/deep/keep.log",
    }, "--no-ignore: everything but hidden files"


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def usr_share_doc(tmp_path) -> Path:
    return write(tmp_path / "doc", {
        "pkg/README": "# pkg\n\nthe quick brown fox jumps over the lazy dog",
        "pkg/LICENSE": GPL,
        "pkg/nginx.conf": "worker_processes auto;  # 工作进程数",
        "pkg/a.bin.1": b"\x00\x01\x02binary",
        "pkg/b.core": b"\x00core dump",
        "pkg/empty": b"",
        "pkg/logo.png": b"\x89PNG\r\n\x1a\n",
        "pkg/debug.log": "noise",
    })


def test_index_command_reads_text_of_any_name_and_groups_skips(usr_share_doc, tmp_path, tiny_model_dir):
    db = tmp_path / "idx"
    r = invoke("index", usr_share_doc, "--db", db, "--model", tiny_model_dir, "--exclude", "*.log")
    assert r.exit_code == 0, r.output
    head, *reasons = r.stdout.splitlines()
    assert "6 files found, 3 added, 0 updated, 0 unchanged, 0 removed, 3 skipped, 1 excluded;" in head
    assert reasons == ["  skipped 2 files: binary file (not text)", "  skipped 1 file: empty file"]

    r = invoke("search", "GNU GENERAL PUBLIC LICENSE", "--db", db, "--type", "text", "--json")
    assert {Path(h["path"]).name for h in json.loads(r.stdout)["hits"]} == {"README", "LICENSE", "nginx.conf"}

    r = CliRunner().invoke(cli, ["-v", "index", str(usr_share_doc), "--db", str(db), "--exclude", "*.log"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "6 files found, 0 added, 0 updated, 3 unchanged" in r.stdout
    lines = r.stdout.splitlines()
    at = lines.index("  skipped 2 files: binary file (not text)")
    assert lines[at + 1 : at + 5] == [
        f"    {usr_share_doc / 'pkg/a.bin.1'}", f"    {usr_share_doc / 'pkg/b.core'}", "  skipped 1 file: empty file", f"    {usr_share_doc / 'pkg/empty'}",
    ]


def test_index_command_json_keeps_the_list_and_adds_counts(usr_share_doc, tmp_path, tiny_model_dir):
    r = invoke("index", usr_share_doc, "--db", tmp_path / "idx", "--model", tiny_model_dir, "--json", "--include", "*.1", "--include", "README")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["skipped"] == [{"path": str(usr_share_doc / "pkg/a.bin.1"), "reason": "binary file (not text)"}]
    assert summary["skipped_by_reason"] == {"binary file (not text)": 1}
    assert (summary["found"], summary["added"], summary["unchanged"], summary["excluded"]) == (2, 1, 0, 6)
    assert {"updated", "removed", "documents", "chunks", "seconds", "chunks_per_second", "precision", "db"} <= set(summary)


def test_index_command_no_ignore(tmp_path, tiny_model_dir):
    root = write(tmp_path / "repo", {".gitignore": "notes/\n", "README": "the lazy dog", "notes/todo": "buy milk"})
    r = invoke("index", root, "--db", tmp_path / "idx", "--model", tiny_model_dir, "--json")
    assert (json.loads(r.stdout)["found"], json.loads(r.stdout)["added"]) == (1, 1)
    r = invoke("index", root, "--db", tmp_path / "idx", "--json", "--no-ignore")
    assert (json.loads(r.stdout)["added"], json.loads(r.stdout)["unchanged"]) == (1, 1)


def test_index_help_names_the_new_options():
    r = invoke("index", "--help")
    assert "--include GLOB" in r.stdout and "--exclude GLOB" in r.stdout and "--no-ignore" in r.stdout and "any other" in r.stdout


def test_holds_at_least_counts_files_and_folders_until_the_limit(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"x" * 100)
    (tmp_path / "sub" / "b.txt").write_bytes(b"y" * 50)
    assert holds_at_least([tmp_path], 150) and not holds_at_least([tmp_path], 151)
    assert holds_at_least([tmp_path / "a.txt"], 100) and not holds_at_least([tmp_path / "a.txt"], 101)
    assert holds_at_least([tmp_path / "a.txt", tmp_path / "sub"], 150)
    assert not holds_at_least([], 1)
