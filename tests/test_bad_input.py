"""Bad input, end to end: every mistake is one clear message (naming the file or field and what
to do), never a traceback, and never changes an existing index.

Files that cannot be indexed are skipped with a reason in the summary (exit 0) while the rest of
the run goes on; fatal mistakes (a missing path, a damaged or foreign index, a bad query) are one
line on stderr with a non-zero exit, or a 4xx JSON answer over HTTP. Everything runs on the tiny
random-weight encoder.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from cli import cli
from web.app import create_app

EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
FOX_ZH = "快速的棕色狐狸跳过了懒狗。"


# -- fixtures and helpers ---------------------------------------------------------------------


def snapshot(db: Path, ignore: tuple[str, ...] = ("write.lock",)) -> dict[str, bytes]:
    """Every file of an index folder, by name and bytes (the lock file's pid aside)."""
    return {p.name: p.read_bytes() for p in sorted(db.iterdir()) if p.name not in ignore}


def invoke(*args, input=None):
    # catch_exceptions=False: an escaping exception fails the test with its traceback
    return CliRunner().invoke(cli, ["-q", *map(str, args)], input=input, catch_exceptions=False)


def assert_one_line_error(r, code: int, message: str) -> None:
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    assert r.stderr == f"error: {message}\n", r.stderr
    assert r.stdout == ""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tiny_model_dir) -> Path:
    """An index of a few documents, two of them hostile markup; tests work on copies of it."""
    root = tmp_path_factory.mktemp("bad-input-docs")
    (root / "en.md").write_text("# Fox\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")
    (root / "zh.md").write_text(f"# 狐狸\n\n{FOX_ZH}", encoding="utf-8")
    (root / "evil.jsonl").write_text(json.dumps({"id": EVIL, "title": EVIL, "text": f"{EVIL} the lazy dog"}) + "\n", encoding="utf-8")
    (root / "evil.html").write_text(
        "<html><head><title>&lt;script&gt;alert(3)&lt;/script&gt;</title></head>"
        "<body><p>&lt;script&gt;alert(4)&lt;/script&gt; the lazy dog</p><script>alert(5)</script></body></html>",
        encoding="utf-8",
    )
    db = root.parent / "bad-input-idx"
    r = invoke("index", root, "--db", db, "--model", tiny_model_dir, "--id-field", "id", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 4, r.output
    return db


@pytest.fixture
def db(pristine, tmp_path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    return copy


@pytest.fixture
def good(tmp_path) -> Path:
    """A file that indexes fine, to show a run goes on past a bad one."""
    path = tmp_path / "good" / "good.md"
    path.parent.mkdir()
    path.write_text("# Good\n\nsearch engines rank documents by relevance to a query", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def other_model(tiny_model_dir, tmp_path_factory) -> Path:
    """Same name and shape as the tiny encoder, other weights: its vectors mean something else."""
    dest = tmp_path_factory.mktemp("other") / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, dest)
    weights = dest / "model.safetensors"
    torch.manual_seed(1)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in load_file(weights).items()}, weights)
    return dest


# -- indexing: files that are skipped with a reason -----------------------------------------

_MIXED = "第一行：快速的狐狸\n".encode() + "第二行：懒狗在睡觉\n".encode("gbk")

SKIPPED = [
    # (id, file name, content, exact reason)
    ("binary", "blob.txt", bytes(range(256)) * 4, "binary file (not text)"),
    ("zero-byte", "empty.md", b"", "empty file"),
    ("whitespace-only", "blank.txt", b"  \n\t\r\n", "empty file"),
    (
        "invalid-utf8", "latin.txt", b"hello \xff\xfe\xfd world\n",
        "cannot decode: line 1 is not UTF-8, and the file is not UTF-16, GB18030 or Big5 either "
        "(mixed encodings?) — convert it to UTF-8 and re-run",
    ),
    (
        "mixed-encodings", "mixed.txt", _MIXED,
        "cannot decode: line 2 is not UTF-8, and the file is not UTF-16, GB18030 or Big5 either "
        "(mixed encodings?) — convert it to UTF-8 and re-run",
    ),
    ("bad-bom", "bom.txt", b"\xef\xbb\xbfok \xff broken", "starts with a UTF-8 byte-order mark but is not valid UTF-8 (invalid start byte at byte 3)"),
    ("jsonl-malformed-line", "rows.jsonl", b'{"text": "ok"}\n{"text": oops}\n', "line 2: invalid JSON (Expecting value at column 10)"),
    ("jsonl-not-an-object", "list.jsonl", b'["just", "a", "list"]\n', 'line 1: expected a JSON object like {"text": "..."}, found list'),
    ("jsonl-missing-text-field", "body.jsonl", b'{"id": 1, "body": "hello"}\n', "line 1: no field 'text' (fields: id, body) — pass --text-field NAME"),
    ("jsonl-text-not-a-string", "num.jsonl", b'{"text": 42}\n', "line 1: field 'text' is int, not text"),
    ("csv-unclosed-quote", "quote.csv", b'id,text\n1,fine\n2,"never closed\n3,more\n',
     "line 3: malformed CSV (unexpected end of data) — check the quotes on that line"),
    ("csv-wrong-field-count", "cols.csv", b"id,text\n1,ok\n2,a,b,c\n", "line 3: expected 2 fields, found 4"),
    ("csv-missing-text-column", "body.csv", b"id,body\n1,hello\n", "line 1: no column 'text' (columns: id, body) — pass --text-field NAME"),
]


@pytest.mark.parametrize("name, content, reason", [c[1:] for c in SKIPPED], ids=[c[0] for c in SKIPPED])
def test_bad_file_is_skipped_with_its_reason(db, good, tmp_path, tiny_model_dir, name, content, reason):
    bad = tmp_path / "bad" / name
    bad.parent.mkdir()
    bad.write_bytes(content)
    before = snapshot(db)

    # alone, into an existing index: a reason in the summary, exit 0, not a byte changed
    r = invoke("index", bad, "--db", db, "--json")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    summary = json.loads(r.stdout)
    assert summary["skipped"] == [{"path": str(bad), "reason": reason}]
    assert summary["added"] == summary["updated"] == 0
    assert snapshot(db) == before

    # next to a good file, into a new index: the good one is indexed all the same
    bad.rename(good.parent / name)
    r = invoke("index", good.parent, "--db", tmp_path / "new", "--model", tiny_model_dir, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 1 and summary["chunks"] >= 1
    assert summary["skipped"] == [{"path": str(good.parent / name), "reason": reason}]

    # and the plain summary counts the reason; -v names the file under it
    r = invoke("index", good.parent, "--db", tmp_path / "new")
    assert r.exit_code == 0 and f"  skipped 1 file: {reason}\n" in r.stdout and str(good.parent / name) not in r.stdout
    r = CliRunner().invoke(cli, ["-v", "index", str(good.parent), "--db", str(tmp_path / "new")], catch_exceptions=False)
    assert r.exit_code == 0 and f"  skipped 1 file: {reason}\n    {good.parent / name}\n" in r.stdout


def test_binary_suffix_is_skipped_when_named_and_ignored_in_a_folder(db, good, tmp_path, tiny_model_dir):
    photo = good.parent / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    before = snapshot(db)
    r = invoke("index", photo, "--db", db, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["skipped"] == [
        {"path": str(photo), "reason": "unsupported file type '.png' (supported: .csv, .htm, .html, .jsonl, .markdown, .md, .pdf, .text, .txt, "
                                       "or any text file)"}
    ]
    assert snapshot(db) == before
    r = invoke("index", good.parent, "--db", tmp_path / "new", "--model", tiny_model_dir, "--json")
    summary = json.loads(r.stdout)
    assert summary["added"] == 1 and summary["skipped"] == []


def test_symlink_loop_in_a_folder_is_skipped(db, good, tmp_path, tiny_model_dir):
    loops = tmp_path / "loops"
    loops.mkdir()
    (loops / "loop1.txt").symlink_to("loop2.txt")
    (loops / "loop2.txt").symlink_to("loop1.txt")
    (loops / "self").symlink_to(loops, target_is_directory=True)  # a folder loop: not followed
    skipped = [{"path": str(loops / f"loop{n}.txt"), "reason": "symbolic link loop — fix or remove the link"} for n in (1, 2)]
    before = snapshot(db)
    r = invoke("index", loops, "--db", db, "--json")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert json.loads(r.stdout)["skipped"] == skipped
    assert snapshot(db) == before
    r = invoke("index", loops, good, "--db", tmp_path / "new", "--model", tiny_model_dir, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 1 and summary["skipped"] == skipped


def test_dangling_symlink_is_skipped(db, good, tmp_path, tiny_model_dir):
    (good.parent / "gone.txt").symlink_to(tmp_path / "no-such-file.txt")
    r = invoke("index", good.parent, "--db", tmp_path / "new", "--model", tiny_model_dir, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 1
    assert summary["skipped"] == [{"path": str(tmp_path / "no-such-file.txt"), "reason": "cannot read: No such file or directory"}]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_skipped(db, good, tmp_path, tiny_model_dir):
    locked = good.parent / "locked.txt"
    locked.write_text("secret", encoding="utf-8")
    locked.chmod(0)
    try:
        r = invoke("index", good.parent, "--db", tmp_path / "new", "--model", tiny_model_dir, "--json")
    finally:
        locked.chmod(0o644)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 1
    assert summary["skipped"] == [{"path": str(locked), "reason": "cannot read: Permission denied"}]


def test_unreadable_file_is_skipped_even_as_root(db, good, tmp_path, tiny_model_dir, monkeypatch):
    """The same as above where the suite runs as root: the read itself is made to fail."""
    locked = good.parent / "locked.txt"
    locked.write_text("secret", encoding="utf-8")
    read_bytes = Path.read_bytes

    def refuse(self):
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    before = snapshot(db)
    r = invoke("index", locked, "--db", db, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["skipped"] == [{"path": str(locked), "reason": "cannot read: Permission denied"}]
    assert snapshot(db) == before
    r = invoke("index", good.parent, "--db", tmp_path / "new", "--model", tiny_model_dir, "--json")
    summary = json.loads(r.stdout)
    assert summary["added"] == 1 and [s["path"] for s in summary["skipped"]] == [str(locked)]


# -- indexing: files that are read despite looking wrong ------------------------------------


@pytest.mark.parametrize(
    "declared, encoding",
    [
        ("iso-8859-1", "utf-8"),  # a lying single-byte charset: it would decode to mojibake
        ("gbk", "utf-8"),
        ("utf-16", "utf-8"),
        ("utf-8", "gbk"),  # a lying UTF-8 declaration: detection finds GBK
        ("no-such-charset", "utf-8"),
    ],
)
def test_html_with_a_wrong_declared_charset_is_read_right(tmp_path, tiny_model_dir, declared, encoding):
    page = tmp_path / "docs" / "fox.html"
    page.parent.mkdir()
    page.write_bytes(
        f'<html><head><meta charset="{declared}"><title>狐狸</title></head><body><p>{FOX_ZH}</p></body></html>'.encode(encoding)
    )
    db = tmp_path / "idx"
    r = invoke("index", page.parent, "--db", db, "--model", tiny_model_dir, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 1, r.output
    r = invoke("search", "狐狸", "--db", db, "--mode", "lexical", "--json")
    [hit] = json.loads(r.stdout)["hits"]
    assert hit["title"] == "狐狸" and hit["snippet"] == FOX_ZH and hit["lang"] == "zh"


def test_very_large_single_line_file_is_indexed(tmp_path, tiny_model_dir):
    """There is no size limit in the indexer: a 2 MB line without a sentence end is cut at token
    boundaries into many chunks (the real issue speaks of 200 MB; that would only take longer)."""
    big = tmp_path / "docs" / "big.txt"
    big.parent.mkdir()
    words = "the quick brown fox jumps over the lazy dog "
    big.write_text((words * (2_000_000 // len(words) + 1))[:2_000_000], encoding="utf-8")
    assert big.stat().st_size == 2_000_000 and big.read_bytes().count(b"\n") == 0
    db = tmp_path / "idx"
    # (chunks that fit the tiny model's 128-token window, so the summary counts chunks, not windows)
    r = invoke("index", big, "--db", db, "--model", tiny_model_dir, "--max-tokens", "100", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 1 and summary["skipped"] == [] and summary["chunks"] > 5000
    info = json.loads(invoke("info", "--db", db, "--json").stdout)
    assert info["chunks"] == summary["chunks"] and info["vectors_in_sync"]


# -- indexing: fatal mistakes ---------------------------------------------------------------


def test_fatal_index_mistakes_are_one_line_and_touch_nothing(db, tmp_path, tiny_model_dir):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "file-not-dir").write_text("x", encoding="utf-8")
    before = snapshot(db)
    cases = [
        (("index", tmp_path / "missing", "--db", db), 2, f"{tmp_path / 'missing'}: no such file or folder — check the path"),
        (
            ("index", tmp_path / "loop", "--db", db), 2,
            f"{tmp_path / 'loop'}: broken symbolic link (its target is missing, or it loops) — fix or remove the link",
        ),
        (("index", "--db", db), 2, "nothing to index — give one or more files or folders: xlsearch index PATH..."),
        (
            ("index", tmp_path / "file-not-dir", "--db", tmp_path / "file-not-dir", "--model", tiny_model_dir), 2,
            f"--db {tmp_path / 'file-not-dir'} is a file, not a directory — choose a directory for the index",
        ),
    ]
    for args, code, message in cases:
        assert_one_line_error(invoke(*args), code, message)
    assert snapshot(db) == before


# -- store: damaged or foreign index files --------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _overwrite_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _overwrite_header, _empty], ids=["truncated", "header-overwritten", "zero-byte"])
def test_damaged_faiss_file_is_one_warning_and_index_repairs_it(db, pristine, damage):
    [faiss_file] = db.glob("vectors-*.faiss")
    damage(faiss_file)
    before = snapshot(db)
    expected = invoke("search", "the lazy dog", "--db", pristine, "--json").stdout

    r = invoke("search", "the lazy dog", "--db", db, "--json")
    assert r.exit_code == 0 and "Traceback" not in r.output
    assert r.stdout == expected  # the vectors are rebuilt from SQLite, in memory
    assert r.stderr == (
        f"{faiss_file} is damaged; searching vectors rebuilt in memory — run `xlsearch index` on {db} to repair it on disk\n"
    )
    assert snapshot(db) == before  # a reader never writes

    # as the warning says, an index run (even one with nothing new) repairs the file
    empty_dir = db.parent / "empty-folder"
    empty_dir.mkdir()
    r = invoke("index", empty_dir, "--db", db, "--json")
    assert r.exit_code == 0, r.output
    assert r.stderr == f"{faiss_file} is damaged; rebuilding it from the database\n"
    assert snapshot(db)[faiss_file.name] == snapshot(pristine)[faiss_file.name]
    r = invoke("search", "the lazy dog", "--db", db, "--json")
    assert r.stdout == expected and r.stderr == ""


def _damage_table_page(table: str):
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as conn:
            page_size = conn.execute("pragma page_size").fetchone()[0]
            root = conn.execute("select rootpage from sqlite_master where name = ?", [table]).fetchone()[0]
        conn.close()
        data = bytearray(path.read_bytes())
        data[(root - 1) * page_size : root * page_size] = b"\x42" * page_size
        path.write_bytes(bytes(data))

    return damage


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 100)


SQLITE_DAMAGE = [
    # (id, damage, reason sqlite gives, commands that must fail)
    ("garbage", _garbage, "cannot be opened (file is not a database)", ("search", "info", "index")),
    ("truncated", _truncate, "cannot be opened (database disk image is malformed)", ("search", "info", "index")),
    ("meta-page", _damage_table_page("meta"), "cannot be read (database disk image is malformed)", ("search", "info", "index")),
    ("chunks-page", _damage_table_page("chunks"), "cannot be read (database disk image is malformed)", ("search", "info")),
    ("documents-page", _damage_table_page("documents"), "cannot be read (database disk image is malformed)", ("search", "info")),
    ("files-page", _damage_table_page("files"), "cannot be read (database disk image is malformed)", ("search", "index")),
]


@pytest.mark.parametrize("damage, reason, commands", [c[1:] for c in SQLITE_DAMAGE], ids=[c[0] for c in SQLITE_DAMAGE])
def test_damaged_sqlite_is_one_clear_error_and_left_as_it_was(db, good, damage, reason, commands):
    damage(db / "index.sqlite")
    before = snapshot(db)
    args = {
        "search": ("search", "the lazy dog", "--db", db),
        "info": ("info", "--db", db),
        "index": ("index", good, "--db", db),
    }
    for command in commands:
        r = invoke(*args[command])
        assert_one_line_error(r, 1, f"{db / 'index.sqlite'} {reason} — the index is damaged; rebuild it into a new --db directory")
        assert snapshot(db) == before, command  # nor any -wal/-shm file left behind


def test_index_made_by_another_model_is_refused(db, good, other_model):
    before = snapshot(db)
    with sqlite3.connect(db / "index.sqlite") as conn:
        recorded = json.loads(conn.execute("select value from meta where key = 'model'").fetchone()[0])
    conn.close()
    message = (
        f"the index at {db} was built with model 'tiny-encoder' ({recorded['path']}, dim 32); "
        f"'tiny-encoder' ({other_model}, dim 32) would give meaningless results — "
        f"pass --model {recorded['path']}, or index into a new --db directory"
    )
    for args in [
        ("search", "the lazy dog", "--db", db, "--model", other_model),
        ("index", good, "--db", db, "--model", other_model),
        ("serve", "--db", db, "--model", other_model),  # refused before the server starts
    ]:
        assert_one_line_error(invoke(*args), 1, message)
    assert snapshot(db) == before


# -- queries on the command line ------------------------------------------------------------

BAD_QUERIES = [
    # (id, extra args, exit code, message)
    ("empty", ("",), 2, "empty query — type some words to search for"),
    ("whitespace-only", (" \t\n\u3000 ",), 2, "empty query — type some words to search for"),
    ("control-characters-only", ("\x00\x07\x1b\x7f\x9b",), 2, "empty query — type some words to search for"),
    ("10000-characters", ("fox " * 2500,), 2, "query is 9999 characters long; the limit is 2000 — shorten it"),
    ("k-zero", ("fox", "-k", "0"), 2, "-k must be between 1 and 1000, not 0"),
    ("k-negative", ("fox", "-k", "-5"), 2, "-k must be between 1 and 1000, not -5"),
    ("k-huge", ("fox", "-k", str(10**30)), 2, f"-k must be between 1 and 1000, not {10**30}"),
]


@pytest.mark.parametrize("args, code, message", [c[1:] for c in BAD_QUERIES], ids=[c[0] for c in BAD_QUERIES])
def test_bad_query_on_the_command_line(db, args, code, message):
    before = snapshot(db)
    assert_one_line_error(invoke("search", *args, "--db", db), code, message)
    assert snapshot(db) == before


def test_control_characters_in_a_query_are_spaces(db):
    noisy = invoke("search", "lazy\x00dog\x1b[0m\x07", "--db", db, "--json")
    clean = invoke("search", "lazy dog [0m", "--db", db, "--json")
    assert noisy.exit_code == 0 and noisy.stderr == ""
    assert json.loads(noisy.stdout)["hits"] == json.loads(clean.stdout)["hits"] != []


def test_largest_k_and_markup_queries_work(db):
    r = invoke("search", "the lazy dog", "--db", db, "-k", "1000", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["hits"]) == 4
    for mode in ("dense", "lexical", "hybrid"):  # FTS5 syntax in a query is only text
        r = invoke("search", f'{EVIL} "dog" OR NEAR(fox* AND', "--db", db, "--mode", mode, "--json")
        assert r.exit_code == 0 and r.stderr == "", (mode, r.output)


# -- queries over HTTP ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(pristine, tmp_path_factory):
    db = tmp_path_factory.mktemp("web") / "idx"
    shutil.copytree(pristine, db)
    with TestClient(create_app(db), raise_server_exceptions=False) as client:
        # while served, SQLite keeps a -shm file whose read marks readers update: not index data
        yield client, db, snapshot(db, ignore=("write.lock", "index.sqlite-shm"))


def _unchanged(web) -> bool:
    _, db, before = web
    return snapshot(db, ignore=("write.lock", "index.sqlite-shm")) == before


EMPTY = {"error": "empty query — type some words to search for"}


@pytest.mark.parametrize(
    "params, body",
    [({"q": " \t\n "}, EMPTY), ({"q": "\x00\x07\x1b"}, EMPTY)],
    ids=["whitespace-only", "control-characters-only"],  # an empty q is 422 (the schema's minLength)
)
@pytest.mark.parametrize("endpoint", ["/api/search", "/api/summarize"])
def test_http_empty_query_is_400_json(web, endpoint, params, body):
    r = web[0].get(endpoint, params=params)
    assert r.status_code == 400 and r.json() == body
    assert _unchanged(web)


@pytest.mark.parametrize(
    "params, field, msg",
    [
        ({"q": "x" * 10_000}, "q", "String should have at most 2000 characters"),
        ({"q": "fox", "k": 0}, "k", "Input should be greater than or equal to 1"),
        ({"q": "fox", "k": -1}, "k", "Input should be greater than or equal to 1"),
        ({"q": "fox", "k": 10**30}, "k", "Input should be less than or equal to 1000"),
        ({"q": "fox", "k": "ten"}, "k", "Input should be a valid integer, unable to parse string as an integer"),
        ({"q": "fox", "offset": -1}, "offset", "Input should be greater than or equal to 0"),
        ({}, "q", "Field required"),
        ({"q": ""}, "q", "String should have at least 1 character"),
    ],
    ids=["10000-characters", "k-zero", "k-negative", "k-huge", "k-not-a-number", "offset-negative", "q-missing", "q-empty"],
)
def test_http_bad_parameter_is_422_naming_the_field(web, params, field, msg):
    r = web[0].get("/api/search", params=params)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["query", field] and detail["msg"] == msg
    assert _unchanged(web)


@pytest.mark.parametrize(
    "doc_id",
    ["9223372036854775807", "9223372036854775808", "99999999999999999999999", "-1", "0", "-9223372036854775809",
     "0000000000000000000001", "007", "٣", "１", "1e3", "1.0", "0x10", " 1", "%00"],
    ids=["2^63-1", "2^63", "huge", "negative", "zero", "below-int64", "leading-zeros", "leading-zeros-7", "arabic-indic-3",
         "fullwidth-1", "exponent", "float", "hex", "space", "nul"],
)
@pytest.mark.parametrize("route", ["/api/documents/{}", "/documents/{}", "/documents/1?chunk={}"])
def test_http_every_id_a_client_sends_gets_a_4xx_or_its_document(web, route, doc_id):
    """Ids are SQLite integers: past 2^63 one used to crash the server (OverflowError, 500)."""
    r = web[0].get(route.format(doc_id))
    if r.status_code == 200:  # a real document: only an id that reads as a number in range names one
        assert doc_id.strip().isascii() and float(doc_id) >= 1
    else:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/json"
        assert len(r.text) < 2000
    assert _unchanged(web)


def test_http_a_rejected_value_is_not_echoed_whole(web):
    r = web[0].get("/api/search", params={"q": "x" * 30_000})
    assert r.status_code == 422 and len(r.content) < 1000
    [detail] = r.json()["detail"]
    assert detail["input"].startswith("x" * 200) and detail["input"].endswith("… (30000 characters)")


def test_http_control_characters_in_a_query_are_spaces(web):
    client = web[0]
    noisy = client.get("/api/search", params={"q": "lazy\x00dog\x1b"}).json()["hits"]
    assert noisy and noisy == client.get("/api/search", params={"q": "lazy dog"}).json()["hits"]


def test_http_unknown_parameters_are_ignored(web):
    client = web[0]
    plain = client.get("/api/search", params={"q": "the lazy dog", "k": 2})
    extra = client.get("/api/search", params={"q": "the lazy dog", "k": 2, "K": 1, "limit": 1, "debug": "true", "q2": "x"})
    assert plain.status_code == extra.status_code == 200 and extra.json() == plain.json()
    assert len(extra.json()["hits"]) == 2
    assert _unchanged(web)


def test_http_large_bodies_are_refused_or_ignored(web):
    client = web[0]
    body = b"x" * 5_000_000
    for path in ("/api/search", "/", "/api/summarize"):  # the app has no POST endpoint
        r = client.post(path, content=body)
        assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    r = client.request("GET", "/api/search", params={"q": "the lazy dog", "k": 1}, content=body)  # a GET body is not read
    assert r.status_code == 200 and len(r.json()["hits"]) == 1
    assert _unchanged(web)


def test_http_search_page_shows_query_errors_as_text(web):
    client = web[0]
    r = client.get("/", params={"q": "fox " * 2500})
    assert r.status_code == 200
    assert '<p class="error">query is 9999 characters long; the limit is 2000 — shorten it</p>' in r.text
    r = client.get("/", params={"q": "\x00\x07"})
    assert r.status_code == 200 and '<p class="error">empty query — type some words to search for</p>' in r.text
    assert _unchanged(web)


def test_http_pages_escape_markup_in_the_query_and_the_documents(web):
    client = web[0]
    page = client.get("/", params={"q": EVIL})
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the query, echoed as text

    hits = client.get("/api/search", params={"q": "the lazy dog", "k": 10}).json()["hits"]
    evil = [h for h in hits if h["path"].endswith(("evil.jsonl", "evil.html"))]
    assert {h["title"] for h in evil} == {EVIL, "<script>alert(3)</script>"}  # the API returns raw text
    page = client.get("/", params={"q": "the lazy dog"})  # titles, keys and snippets in the list of hits
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page.text and "&lt;script&gt;alert(4)&lt;/script&gt;" in page.text
    for hit in evil:
        page = client.get(f"/documents/{hit['doc_id']}", params={"chunk": hit["chunk_id"], "q": EVIL})
        assert page.status_code == 200 and '<mark id="hit">' in page.text
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(" in page.text
    html_doc = next(h for h in evil if h["path"].endswith(".html"))
    assert "alert(5)" not in client.get(f"/api/documents/{html_doc['doc_id']}").json()["text"]  # <script> bodies are not text
    assert _unchanged(web)
