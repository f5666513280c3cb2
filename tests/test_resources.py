"""When the disk fills or memory runs out: one clear line, a distinct exit status, and an index
that still opens, holds what was committed and answers queries.

No room is simulated without privileges: the file size limit (`RLIMIT_FSIZE`, what `ulimit -f`
sets) with SIGXFSZ ignored makes every write past it fail with EFBIG, as a full disk fails with
ENOSPC. It is set in-process around one CLI call, so a case costs a fraction of a second; sweeps
over many limits hit every write of a run (SQLite's shared-memory file, the new database, its
write-ahead log, the FAISS file). Where user namespaces allow mounting one, a small tmpfs gives a
real full disk (ENOSPC, SQLITE_FULL). Out of memory is PyTorch's allocation error (and
MemoryError) raised from the encoder. A real one under `ulimit -v` was tried and dropped: where the
allocation fails is not ours to choose, and when it is inside the Rust tokenizer the process
aborts (SIGABRT) before Python sees an error — then the index keeps its committed batches, as
after any kill (tests/test_crash.py). Everything runs on the tiny random-weight encoder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from storage import faiss_files as vx

REPO = Path(__file__).resolve().parent.parent
KiB = 1024
INDEX_ARGS = ("--max-tokens", "16", "--overlap-tokens", "0", "--commit-every", "32")  # many chunks, several commits
QUERIES = ["quick brown fox", "搜索引擎", "the lazy dog"]
TEMPORARIES = re.compile(r"\.new(-wal|-shm)?$|\.tmp$")  # a database being created, a FAISS file being written
_EN = "the quick brown fox jumps over the lazy dog search engines rank documents by relevance".split()
_ZH = list("快速的棕色狐狸跳过了懒狗搜索引擎按照与查询的相关性对文档进行排序")


# -- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def file_size_limit(limit: int):
    """No file may grow past `limit` bytes meanwhile: such a write fails with EFBIG, like a full disk."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel's signal ends the process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield f"a file reached this process's file size limit (ulimit -f: {limit} bytes)"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def invoke(*args):
    # catch_exceptions=False: an escaping exception (a traceback for the user) fails the test
    return CliRunner().invoke(cli, ["-q", *map(str, args)], catch_exceptions=False)


def write_error(db: Path, why: str) -> str:
    fix = "raise the limit (ulimit -f unlimited)" if "ulimit" in why else "free some space or choose a --db directory on another disk"
    return f"error: no room to write the index at {db}: {why} — {fix}, then run again (batches committed before this are kept)\n"


def read_error(db: Path, why: str) -> str:
    fix = "raise the limit (ulimit -f unlimited)" if "ulimit" in why else "free some space"
    return f"error: cannot read the index at {db}: {why}, and SQLite needs a few KB beside it to read — {fix}\n"


def snapshot(db: Path) -> dict[str, bytes]:
    """Every file of an index folder by name and bytes (the lock file holds a pid: aside)."""
    return {p.name: p.read_bytes() for p in sorted(db.iterdir()) if p.name != "write.lock"}


def state(db: Path) -> tuple[dict, dict]:
    """What an index holds: chunks per file, and every query's hits (ids aside: a resumed run numbers
    chunks differently from a clean one)."""
    with contextlib.closing(sqlite3.connect(db / "index.sqlite")) as conn:
        per_file = dict(conn.execute(
            "select f.path, count(c.id) from files f join documents d on d.file_id = f.id "
            "join chunks c on c.doc_id = d.id group by f.path"
        ).fetchall())
    hits = {}
    for q in QUERIES:
        r = invoke("search", q, "--db", db, "-k", "5", "--json")
        assert r.exit_code == 0, r.output
        hits[q] = [(h["path"], h["key"], round(h["score"], 4), h["snippet"]) for h in json.loads(r.stdout)["hits"]]
    return per_file, hits


def leftovers(db: Path) -> list[str]:
    return sorted(p.name for p in db.iterdir() if TEMPORARIES.search(p.name)) if db.exists() else []


def _corpus(root: Path, n_files: int, seed: int, sentences=(3, 8)) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(n_files):
        if i % 2:
            text = "。".join("".join(rng.choices(_ZH, k=rng.randint(8, 20))) for _ in range(rng.randint(*sentences))) + "。"
        else:
            text = ". ".join(" ".join(rng.choices(_EN, k=rng.randint(5, 12))) for _ in range(rng.randint(*sentences))) + "."
        (root / f"doc{i:02d}.md").write_text(text, encoding="utf-8")
    return root


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    return _corpus(tmp_path_factory.mktemp("resources") / "docs", n_files=10, seed=0)


@pytest.fixture(scope="module")
def extra(tmp_path_factory) -> Path:
    """One bigger file to add to an existing index: its batch needs more room than the index has."""
    root = tmp_path_factory.mktemp("resources-extra") / "extra"
    root.mkdir()
    rng = random.Random(1)
    (root / "long.md").write_text(". ".join(" ".join(rng.choices(_EN, k=10)) for _ in range(150)) + ".", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def pristine(docs, tiny_model_dir) -> Path:
    db = docs.parent / "pristine"
    r = invoke("index", docs, "--db", db, "--model", tiny_model_dir, *INDEX_ARGS, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 10, r.output
    return db


@pytest.fixture(scope="module")
def clean(pristine, docs, extra, tiny_model_dir) -> dict[str, tuple]:
    """What a run with room to spare ends with: the docs alone, and the docs plus the extra file."""
    both = docs.parent / "clean-both"
    shutil.copytree(pristine, both)
    r = invoke("index", extra, "--db", both, "--model", tiny_model_dir, *INDEX_ARGS)
    assert r.exit_code == 0, r.output
    return {"docs": state(pristine), "both": state(both)}


@pytest.fixture
def db(pristine, tmp_path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    return copy


# -- disk full while indexing -----------------------------------------------------------------

NEW_INDEX_LIMITS = [4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 384, 4096]  # KiB


def test_no_room_while_creating_an_index(docs, clean, tmp_path, tiny_model_dir):
    """Whichever write of a new index finds no room, the run stops with one line and exit 4,
    leaves no temporary files, and the same command with room finishes the index as a clean run."""
    stages = set()
    for kib in NEW_INDEX_LIMITS:
        db = tmp_path / f"new-{kib}"
        with file_size_limit(kib * KiB) as why:
            r = invoke("index", docs, "--db", db, "--model", tiny_model_dir, *INDEX_ARGS)
        if r.exit_code == 0:
            stages.add("done")
        else:
            assert (r.exit_code, r.stderr, r.stdout) == (4, write_error(db, why), ""), kib
            assert leftovers(db) == [], kib
            if (db / "index.sqlite").exists():  # created: an index, with the batches committed before
                stages.add("batches")
                committed, _ = state(db)
                assert all(clean["docs"][0][path] == n for path, n in committed.items()), kib
            else:
                stages.add("creation")
                assert sorted(os.listdir(db)) == ["write.lock"], kib
        r = invoke("index", docs, "--db", db, "--model", tiny_model_dir, *INDEX_ARGS)
        assert r.exit_code == 0, (kib, r.output)
        assert state(db) == clean["docs"], kib
    assert stages == {"creation", "batches", "done"}, "the limits must hit each stage of a run"


EXISTING_INDEX_LIMITS = [16, 32, 48, 64, 96, 128, 192, 256, 4096]  # KiB


def test_no_room_while_adding_to_an_index_leaves_it_as_it_was(db, extra, clean, tiny_model_dir):
    """Adding a file whose batch finds no room (SQLite's shared memory, its write-ahead log): one
    line, exit 4, the index byte-for-byte as it was and answering as before; with room the same
    command adds the file."""
    before = snapshot(db)
    failed = 0
    for kib in EXISTING_INDEX_LIMITS:
        with file_size_limit(kib * KiB) as why:
            r = invoke("index", extra, "--db", db, *INDEX_ARGS)  # no --model: the index's is read first
        if r.exit_code == 0:
            break
        failed += 1
        if kib < 32:  # no room for the shared memory of the reader that looks up the index's model
            assert (r.exit_code, r.stderr, r.stdout) == (4, read_error(db, why), ""), kib
            assert snapshot(db).items() >= before.items(), kib  # see test_reading_without_room_...
        else:
            assert (r.exit_code, r.stderr, r.stdout) == (4, write_error(db, why), ""), kib
            assert snapshot(db) == before, kib  # nor any -wal/-shm file left behind
        assert state(db) == clean["docs"], kib
    assert failed >= 3 and r.exit_code == 0, "the limits must fail several times, then leave room"
    assert state(db) == clean["both"]


def test_no_room_for_the_vector_file_keeps_the_committed_batch(tmp_path, tiny_model_dir):
    """The FAISS file is written after SQLite commits. When it finds no room, the run fails with
    one line, the files SQLite committed stay searchable, the old FAISS file is untouched and no
    temp file is left; a run with room writes the FAISS file."""
    rows = tmp_path / "rows" / "rows.jsonl"
    rows.parent.mkdir()
    rng = random.Random(2)
    rows.write_text("".join(json.dumps({"text": " ".join(rng.choices(_EN, k=6))}) + "\n" for _ in range(3000)), encoding="utf-8")
    db = tmp_path / "idx"
    assert invoke("index", rows, "--db", db, "--model", tiny_model_dir, "--batch-size", "256").exit_code == 0
    [vector_file] = db.glob("vectors-*.faiss")
    old_vectors = vector_file.read_bytes()
    new = tmp_path / "new" / "gecko.md"
    new.parent.mkdir()
    new.write_text("The gecko climbs the glass wall at night.", encoding="utf-8")

    # the addition's write-ahead log fits in the limit, the FAISS file (3000 vectors) does not
    limit = len(old_vectors) // 2
    with file_size_limit(limit) as why:
        r = invoke("index", new, "--db", db)
    assert (r.exit_code, r.stderr, r.stdout) == (4, write_error(db, why), "")
    assert leftovers(db) == []
    assert sorted(db.glob("vectors-*")) == [vector_file] and vector_file.read_bytes() == old_vectors

    r = invoke("search", "gecko", "--db", db, "--mode", "lexical", "--json")  # committed: found
    assert r.exit_code == 0 and [h["path"] for h in json.loads(r.stdout)["hits"]] == [str(new)], r.output

    r = invoke("index", new, "--db", db, "--json")  # with room: nothing to embed, the vectors catch up
    assert r.exit_code == 0 and json.loads(r.stdout)["unchanged"] == 1, r.output
    info = json.loads(invoke("info", "--db", db, "--json").stdout)
    assert info["vectors_in_sync"] and info["chunks"] == 3001
    [vector_file] = db.glob("vectors-*.faiss")
    assert vx.load_index(vector_file).ntotal == 3001


@pytest.mark.parametrize("short_by", [20, 4 * KiB], ids=["tail-buffered-until-close", "midway"])
def test_a_vector_file_that_cannot_be_written_whole_is_never_renamed_in(tmp_path, short_by):
    """faiss.write_index(path) reports a write that fails when its file is closed only on stderr;
    save_index raises instead, removes its temp file and leaves the old file in place."""
    index = vx.build_index("flat", np.arange(40), np.random.default_rng(0).random((40, 32), np.float32), 32)
    whole = tmp_path / "whole.faiss"
    vx.save_index(index, whole)
    target = tmp_path / "vectors.faiss"
    target.write_bytes(b"the previous file")
    with file_size_limit(whole.stat().st_size - short_by), pytest.raises(OSError) as caught:
        vx.save_index(index, target)
    assert caught.value.errno == errno.EFBIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.faiss", "whole.faiss"]
    assert target.read_bytes() == b"the previous file"


# -- disk full while searching ----------------------------------------------------------------


def test_reading_without_room_for_sqlites_shared_memory_is_one_line(db, clean):
    """A reader writes nothing but SQLite's shared-memory file (32 KiB, made on first open). Without
    room for it, search, info and serve fail with one line saying so — not that the index is
    damaged — and the index file is unchanged; with room, everything answers as before."""
    before = snapshot(db)
    with file_size_limit(16 * KiB) as why:
        for args in [("search", "fox", "--db", db), ("info", "--db", db), ("serve", "--db", db)]:
            r = invoke(*args)
            assert (r.exit_code, r.stderr, r.stdout) == (4, read_error(db, why), ""), args
    assert snapshot(db)["index.sqlite"] == before["index.sqlite"]
    assert state(db) == clean["docs"]
    assert snapshot(db) == before  # the reader that had room removed the half-made -shm/-wal files


def test_queries_need_no_room_beyond_shared_memory(db, clean):
    """With room for the shared-memory file and no file allowed to grow past it, every kind of
    query still answers, the same as with room to spare: the query path writes nothing else."""
    expected = {}
    for mode in ("dense", "lexical", "hybrid"):
        r = invoke("search", "the lazy dog", "--db", db, "--mode", mode, "--summary", "--json")
        assert r.exit_code == 0, r.output
        expected[mode] = r.stdout
    with file_size_limit(32 * KiB):
        for mode, out in expected.items():
            r = invoke("search", "the lazy dog", "--db", db, "--mode", mode, "--summary", "--json")
            assert (r.exit_code, r.stdout, r.stderr) == (0, out, ""), mode
        assert invoke("info", "--db", db).exit_code == 0


def test_a_running_server_answers_while_no_file_may_grow(db, tiny_model_dir):
    from fastapi.testclient import TestClient

    from web.app import create_app

    with TestClient(create_app(db)) as client:
        expected = client.get("/api/search", params={"q": "the lazy dog"}).json()
        with file_size_limit(1):
            r = client.get("/api/search", params={"q": "the lazy dog"})
            assert r.status_code == 200 and r.json() == expected
            assert client.get("/", params={"q": "搜索引擎"}).status_code == 200


# -- out of memory ----------------------------------------------------------------------------


def test_out_of_memory_while_embedding_is_one_line_suggesting_a_smaller_batch(db, extra, monkeypatch):
    """PyTorch's failed allocation and MemoryError alike; any other RuntimeError is a bug and stays one."""
    from models.encoder import Encoder

    encode = Encoder.encode

    def failing_with(failure):
        def fake(self, texts, kind, batch_size=32, on_batch=None):
            if on_batch is None:  # not the indexer's batches (the model's identity probe)
                return encode(self, texts, kind, batch_size)
            raise failure

        return fake

    before = snapshot(db)
    for failure in (
        RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                     "you tried to allocate 33554432 bytes. Error code 12 (Cannot allocate memory)"),
        MemoryError(),
    ):
        monkeypatch.setattr(Encoder, "encode", failing_with(failure))
        r = invoke("index", extra, "--db", db, "--batch-size", "64")
        assert (r.exit_code, r.stdout) == (5, "")
        assert r.stderr == (
            "error: out of memory embedding chunks in batches of 64 — run again with a smaller --batch-size (e.g. 16); "
            "files committed before this (0) are kept and will not be embedded again\n"
        )
        assert snapshot(db) == before

    monkeypatch.setattr(Encoder, "encode", failing_with(RuntimeError("mat1 and mat2 shapes cannot be multiplied")))
    with pytest.raises(RuntimeError, match="shapes"):
        invoke("index", extra, "--db", db)


# -- a real full disk: tmpfs in a user namespace ----------------------------------------------

TMPFS_MIB = 4


def _tmpfs_available() -> bool:
    try:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@contextlib.contextmanager
def free_space(mount: Path, room: int):
    """Fill the disk at `mount` until `room` bytes are left; empty it afterwards."""
    filler = mount / "filler"
    st = os.statvfs(mount)
    with open(filler, "wb") as f:
        f.write(bytes(max(0, st.f_bavail * st.f_frsize - room)))
    try:
        yield "the disk is full"
    finally:
        filler.unlink()


def _full_disk_child(mount: str, docs: str, extra: str, pristine: str, model: str) -> None:
    """In a private tmpfs at `mount`: the write and read checks above, on a real full disk.

    The clean states are taken here, not handed over from the parent: this process runs one
    thread, and a different thread count may sum a matrix product in another order — scores then
    differ in the last place, which is no failure of ours (the likely cause of one on CI's CPU)."""
    mount = Path(mount)
    reference = mount / "reference"
    r = invoke("index", docs, "--db", reference, "--model", model, *INDEX_ARGS)
    assert r.exit_code == 0, r.output
    shutil.copytree(pristine, mount / "idx")
    clean = {"new": state(reference), "docs": state(mount / "idx")}
    shutil.rmtree(reference)
    shutil.rmtree(mount / "idx")
    assert clean["new"][0] == clean["docs"][0]
    # a new index, at many amounts of free space: each stage of creation fails cleanly
    for kib in (0, 16, 40, 80, 120, 160, 180, 200, 240, 320, 480, 1024):
        db = mount / f"new-{kib}"
        with free_space(mount, kib * KiB) as why:
            r = invoke("index", docs, "--db", db, "--model", model, *INDEX_ARGS)
        if r.exit_code != 0:
            assert (r.exit_code, r.stderr, r.stdout) == (4, write_error(db, why), ""), kib
            assert leftovers(db) == [], (kib, os.listdir(db))
        r = invoke("index", docs, "--db", db, "--model", model, *INDEX_ARGS)
        assert r.exit_code == 0, (kib, r.output)
        assert state(db) == clean["new"], (kib, state(db), clean["new"])
        shutil.rmtree(db)
    # adding a file to an existing index
    for kib in (0, 16, 64, 128):
        db = mount / "idx"
        shutil.copytree(pristine, db)
        before = snapshot(db)
        with free_space(mount, kib * KiB) as why:
            r = invoke("index", extra, "--db", db, *INDEX_ARGS)
            # without room for a reader's shared memory, reading which model built the index fails first
            expected = read_error(db, why) if kib < 32 else write_error(db, why)
            assert (r.exit_code, r.stderr, r.stdout) == (4, expected, ""), (kib, r.stderr)
            assert snapshot(db).items() >= before.items() if kib < 32 else snapshot(db) == before, kib
        assert state(db) == clean["docs"], (kib, state(db), clean["docs"])
        shutil.rmtree(db)
    # searching: with no room at all a reader cannot make SQLite's shared-memory file
    db = mount / "idx"
    shutil.copytree(pristine, db)
    with free_space(mount, 0) as why:
        r = invoke("search", "fox", "--db", db)
        assert (r.exit_code, r.stderr, r.stdout) == (4, read_error(db, why), "")
    assert state(db) == clean["docs"]
    print("ok")


@pytest.mark.slow
@pytest.mark.skipif(not _tmpfs_available(), reason="needs `unshare -rm` and tmpfs mounts in a user namespace")
def test_a_real_full_disk(pristine, docs, extra, tmp_path, tiny_model_dir):
    mount = tmp_path / "mnt"
    mount.mkdir()
    code = (
        "from tests.test_resources import _full_disk_child; "
        f"_full_disk_child({str(mount)!r}, {str(docs)!r}, {str(extra)!r}, {str(pristine)!r}, {str(tiny_model_dir)!r})"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={TMPFS_MIB}m tmpfs "$0" && exec "$@"', str(mount), sys.executable, "-c", code],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1:] == ["ok"], proc.stderr[-4000:]
