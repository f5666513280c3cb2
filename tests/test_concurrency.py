"""Concurrency: searches, `info` and a second index run while `xlsearch index` commits batches.

The scenario (one module fixture, shared by the first six tests): a small index is built, an
in-process app (TestClient) and a real `xlsearch serve` are started on it, then the corpus
changes (files added, two replaced, one deleted) and a real `xlsearch index --prune` subprocess
re-indexes it, committing one file per batch. Its commits are gated: before each one it waits
for the test's go-ahead, so every commit is followed by at least one round of reads (CLI search,
HTTP search on both servers, the HTML page, CLI info) that races with it. While the run holds
the lock after its first commit, a second `xlsearch index` subprocess is started on the same
--db. Every response is recorded and judged at the end against the committed states, which are
known exactly: files are committed in path order, so state m is the old index with the first m
changed files replaced, then the prune. Chunk ids are never reused, so a hit's chunk id says
which version of its file it came from. k covers the whole collection, so a search response
shows the complete visible state, and it must equal one committed state exactly.

The last tests drive the store's own read/commit races deterministically, in-process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cli import cli
from storage.records import ChunkRecord, DocumentRecord, FileRecord
from storage.schema import SQLITE_NAME
from storage.store import Store
from web.app import create_app

QUERIES = ["quick brown fox search engines", "搜索引擎 狐狸"]
_EN = "the quick brown fox jumps over the lazy dog search engines rank documents by relevance".split()
_ZH = list("快速的棕色狐狸跳过了懒狗搜索引擎按照与查询的相关性对文档进行排序")

BEFORE = [f"doc{i:02d}.md" for i in range(0, 12, 2)]  # the index before the run
ADDED = [f"doc{i:02d}.md" for i in range(1, 12, 2)] + ["doc12.md", "doc13.md"]
REPLACED = ["doc04.md", "doc08.md"]
DELETED = "doc02.md"  # removed from disk, pruned at the end of the run

# The real `xlsearch` command, with one step gated on the test: `commits` waits before each
# commit for the file go-N (announcing itself with waiting-N, and committed-N after), `start`
# waits before taking the write lock for the file go-start (so its start-up can overlap others').
_GATED = r"""
import sys, time
from pathlib import Path
from storage.store import Store
from cli import main

ctl, what = Path(sys.argv.pop(1)), sys.argv.pop(1)

def wait_for(name):
    end = time.monotonic() + 120
    while not (ctl / name).exists() and time.monotonic() < end:
        time.sleep(0.005)

if what == "commits":
    commit, count = Store.write_files, [0]

    def gated(self, *args, **kwargs):
        n = count[0]
        count[0] += 1
        (ctl / f"waiting-{n}").touch()
        wait_for(f"go-{n}")
        commit(self, *args, **kwargs)
        (ctl / f"committed-{n}").touch()

    Store.write_files = gated
else:
    open_for_writing = Store.open_for_writing.__func__

    def gated(cls, *args, **kwargs):
        wait_for("go-start")
        return open_for_writing(cls, *args, **kwargs)

    Store.open_for_writing = classmethod(gated)
sys.argv[0] = "xlsearch"
main()
"""


def _text(name: str, version: int) -> str:
    rng = random.Random(f"{name}/{version}")
    if int(name[3:5]) % 2:
        return "。".join("".join(rng.choices(_ZH, k=rng.randint(10, 20))) for _ in range(rng.randint(5, 7))) + "。"
    return ". ".join(" ".join(rng.choices(_EN, k=rng.randint(8, 12))) for _ in range(rng.randint(5, 7))) + "."


def _index_args(docs, db, model):
    return ["index", str(docs), "--db", str(db), "--model", str(model), "--prune", "--max-tokens", "16",
            "--overlap-tokens", "0", "--batch-size", "4", "--commit-every", "4", "--json"]


def _chunks(db: Path) -> dict[int, tuple]:
    """chunk id → (path, file sha, doc id, start, end, lang), read straight from SQLite."""
    with sqlite3.connect(db / SQLITE_NAME) as conn:
        rows = conn.execute(
            """select c.id, f.path, f.sha256, d.id, c.start, c."end", c.lang
               from chunks c join documents d on d.id = c.doc_id join files f on f.id = d.file_id"""
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _invoke(*args) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    err = r.stderr
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        err += f"\nexception: {r.exception!r}"
    return r.exit_code, r.stdout, err


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """Runs the scenario; returns what was observed, for the tests below to judge."""
    tmp = tmp_path_factory.mktemp("concurrency")
    docs, db, ctl = tmp / "docs", tmp / "idx", tmp / "ctl"
    docs.mkdir()
    ctl.mkdir()
    for name in BEFORE:
        (docs / name).write_text(_text(name, 0), encoding="utf-8")
    code, out, err = _invoke("-q", *_index_args(docs, db, tiny_model_dir))
    assert code == 0, err
    before = _chunks(db)

    for name in ADDED:
        (docs / name).write_text(_text(name, 0), encoding="utf-8")
    for name in REPLACED:
        (docs / name).write_text(_text(name, 1), encoding="utf-8")
    (docs / DELETED).unlink()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs = []
    obs = {"search": [], "info": [], "info_text": [], "page": [], "document": []}
    began = time.monotonic()
    with TestClient(create_app(db), raise_server_exceptions=False) as client:  # an app opened before the run
        try:
            serve = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--db", str(db), "--port", str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(serve)
            first = subprocess.Popen([sys.executable, "-c", _GATED, str(ctl), "commits", "-q", *_index_args(docs, db, tiny_model_dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(first)
            # a second run on the same --db, as a user would start it; it tries the lock once the first holds it
            second = subprocess.Popen([sys.executable, "-c", _GATED, str(ctl), "start", *_index_args(docs, db, tiny_model_dir)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(second)
            deadline = time.monotonic() + 300
            while _get_or_none(base + "/healthz") is None:  # started before the index grows: commit 0 waits for us
                assert serve.poll() is None, f"xlsearch serve died: {serve.communicate()[1]}"
                assert time.monotonic() < deadline
                time.sleep(0.2)
            marks = {"serve up": time.monotonic() - began}

            def one_round(phase: str, i: int) -> None:
                q = QUERIES[i % 2]
                obs["search"].append((phase, "cli", *_invoke("search", q, "--db", db, "-k", "1000", "--json")))
                r = client.get("/api/search", params={"q": q, "k": 1000})
                obs["search"].append((phase, "app", r.status_code, r.text, ""))
                status, body = _get(f"{base}/api/search?" + urllib.parse.urlencode({"q": q, "k": 1000}))
                obs["search"].append((phase, "serve", status, body, ""))
                page = client.get("/", params={"q": q})
                obs["page"].append((phase, page.status_code, '<p class="error">' in page.text))
                if r.status_code == 200 and r.json()["hits"]:
                    doc = r.json()["hits"][0]["doc_id"]
                    obs["document"].append((phase, client.get(f"/api/documents/{doc}").status_code))
                obs["info"].append((phase, *_invoke("info", "--db", db, "--json")))
                obs["info_text"].append((phase, *_invoke("info", "--db", db)))

            released = 0  # commits let through so far
            seen = -1  # the last commit that a round of reads began after
            i, last = 0, 0.0
            while first.poll() is None:
                assert time.monotonic() < deadline, "the index run did not finish"
                if (ctl / "waiting-0").exists() and "locked" not in marks:
                    (ctl / "go-start").touch()  # the first run holds the lock now
                    marks["locked"] = time.monotonic() - began
                if "second done" not in marks and second.poll() is not None:
                    marks["second done"] = time.monotonic() - began
                if released and seen < released - 1 and (ctl / f"committed-{released - 1}").exists():
                    seen = released - 1  # a round that surely sees the last commit
                elif (ctl / f"waiting-{released}").exists() and seen == released - 1 and i > 0 and not (
                    released == 1 and second.poll() is None  # mid-run until the second run gave up
                ):  # (i > 0: a round has read state 0, even when a loaded machine starts the server late)
                    (ctl / f"go-{released}").touch()
                    released += 1  # and a round that races with this commit
                elif time.monotonic() - last < 1.0:  # start-up, the embedding, the hold: read now and then
                    time.sleep(0.02)
                    continue
                one_round("during", i)
                i, last = i + 1, time.monotonic()
            first_out, first_err = first.communicate()
            marks["run done"] = time.monotonic() - began
            for j in range(2):
                one_round("after", j)
            second_out, second_err = second.communicate(timeout=300)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    seconds = time.monotonic() - began

    after = _chunks(db)
    chunks = {**before, **after}  # an id is one version of one file: never reused
    old = {path: sha for path, sha, *_ in before.values()}
    new = {path: sha for path, sha, *_ in after.values()}
    changed = sorted(p for p in new if old.get(p) != new[p])  # committed in this order
    states = [{**old, **{p: new[p] for p in changed[:m]}} for m in range(len(changed) + 1)]
    states.append({p: sha for p, sha in states[-1].items() if p in new})  # the prune
    sizes = {}
    for path, sha, *_ in chunks.values():
        sizes[path, sha] = sizes.get((path, sha), 0) + 1
    return {
        "docs": docs, "db": db, "tmp": tmp, "obs": obs, "chunks": chunks, "states": states, "sizes": sizes,
        "changed": changed, "rounds": i, "released": released, "seconds": seconds, "marks": marks, "model": tiny_model_dir,
        "first": (first.returncode, first_out, first_err, first.pid), "second": (second.returncode, second_out, second_err),
    }


def _get_or_none(url):
    try:
        return _get(url)
    except OSError:
        return None


def _state_of(body: str, run) -> int:
    """Which committed state a --json/API search response shows; AssertionError if none."""
    hits = json.loads(body)["hits"]
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1)), "ranks not 1..n"
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:])), "scores not in order"
    seen = {}
    for h in hits:
        record = run["chunks"].get(h["chunk_id"])
        assert record is not None, f"hit on chunk {h['chunk_id']}, which was never committed"
        path, sha, doc_id, start, end, lang = record
        assert (h["path"], h["doc_id"], h["start"], h["end"], h["lang"]) == (path, doc_id, start, end, lang), f"hit disagrees with its chunk: {h}"
        assert h["snippet"].strip() and (h["similarity"] is None or -1.01 <= h["similarity"] <= 1.01), h
        assert path not in seen, f"{path} twice"
        seen[path] = sha
    assert seen in run["states"], (
        "not a committed state: " + ", ".join(f"{Path(p).name}={'new' if (p, s) in run['new'] else 'old'}" for p, s in sorted(seen.items()))
    )
    return run["states"].index(seen)


@pytest.fixture(scope="module")
def judged(run):
    """Each search response → its committed state (or the reason it is none)."""
    run["new"] = set(run["states"][-1].items()) - set(run["states"][0].items())
    out = []
    for phase, channel, code, body, err in run["obs"]["search"]:
        try:
            assert code in (0, 200), f"status {code}: {body[-300:]} {err[-500:]}"
            assert not err.strip(), f"stderr: {err[-500:]}"
            out.append((phase, channel, _state_of(body, run)))
        except AssertionError as exc:
            out.append((phase, channel, f"{exc}"))
    return out


def test_searches_during_a_run_show_only_committed_states(run, judged):
    problems = [(phase, channel, r) for phase, channel, r in judged if isinstance(r, str)]
    assert not problems, f"{len(problems)} of {len(judged)} responses: {problems[:5]}"
    for channel in ("cli", "app", "serve"):
        during = {r for phase, ch, r in judged if ch == channel and phase == "during"}
        # not vacuous: the reads really overlapped the run, from before its first commit to late in it
        assert 0 in during and len(during) >= 4, f"{channel} saw states {sorted(during)}"
    assert run["released"] == len(run["states"]) - 1, "one commit per changed file, then the prune"
    print(f"\n{run['rounds']} rounds of reads over {run['released']} commits; scenario {run['seconds']:.1f} s; "
          + ", ".join(f"{k} at {v:.1f} s" for k, v in run["marks"].items()))


def test_pages_and_documents_during_a_run_never_fail(run):
    assert run["obs"]["page"] and all(code == 200 and not error for _, code, error in run["obs"]["page"])
    # a document found a moment ago may have been replaced since: gone (404) is fine, a 500 is not
    assert run["obs"]["document"] and all(code in (200, 404) for _, code in run["obs"]["document"])


def test_info_during_a_run_counts_one_committed_state(run):
    counts = [(len(s), len(s), sum(run["sizes"][p, sha] for p, sha in s.items())) for s in run["states"]]
    generations = []
    for phase, code, out, err in run["obs"]["info"]:
        assert code == 0 and not err.strip(), err
        info = json.loads(out)
        assert (info["files"], info["documents"], info["chunks"]) in counts, info
        if phase == "after":
            assert not info["indexing"], info
        generations.append(info["generation"])
    assert generations == sorted(generations)
    assert any(json.loads(out)["indexing"] for phase, _, out, _ in run["obs"]["info"] if phase == "during")
    for phase, code, out, err in run["obs"]["info_text"]:
        assert code == 0 and not err.strip(), err
        # while a run is in progress the vectors trail SQLite by design; it is not damage to repair
        assert "repair" not in out, out
        if phase == "after":
            assert "in progress" not in out, out
    assert any("an index run is in progress" in out for phase, _, out, _ in run["obs"]["info_text"] if phase == "during")


def test_a_second_index_run_is_refused_clearly(run):
    code, out, err = run["second"]
    pid = run["first"][3]
    assert code == 3, (code, out, err)
    lines = err.strip().splitlines()
    assert lines == [f"error: another `xlsearch index` run (pid {pid}) is writing to {run['db']} — wait for it to finish, then run again"], err
    assert out == ""


def test_the_first_run_is_unaffected_and_ends_as_a_clean_build(run):
    code, out, err, _ = run["first"]
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["added"], summary["updated"], summary["removed"]) == (len(ADDED), len(REPLACED), 1)
    assert summary["unchanged"] == len(BEFORE) - len(REPLACED) - 1 and not summary["skipped"]

    clean = run["tmp"] / "clean"
    assert _invoke("-q", *_index_args(run["docs"], clean, run["model"]))[0] == 0
    shape = lambda db: sorted((path, sha, end - start, lang) for path, sha, _, start, end, lang in _chunks(db).values())  # noqa: E731
    assert shape(run["db"]) == shape(clean)
    for q in QUERIES:
        # the same vectors up to batching noise (the run embedded other batches than the clean build)
        hits = [{h["path"]: h["score"] for h in json.loads(_invoke("search", q, "--db", db, "-k", "100", "--json")[1])["hits"]}
                for db in (run["db"], clean)]
        assert hits[0] and hits[0].keys() == hits[1].keys()
        assert all(hits[0][p] == pytest.approx(hits[1][p], abs=2e-3) for p in hits[0])
    info = json.loads(_invoke("info", "--db", run["db"], "--json")[1])
    assert info["vectors_in_sync"] and not info["indexing"]
    assert [p.name for p in run["db"].glob("vectors-*")] == [f"vectors-{info['generation']:08d}.faiss"]


def test_servers_started_before_the_run_see_its_documents_without_a_restart(run, judged):
    final = len(run["states"]) - 1
    after = [(channel, r) for phase, channel, r in judged if phase == "after"]
    assert {channel for channel, _ in after} == {"cli", "app", "serve"}
    assert all(r == final for _, r in after), after
    assert run["states"][final] != run["states"][0]


# -- the same races, deterministically, in-process --------------------------------------------


def _record(path: str, encoder, version: int, n: int = 3) -> FileRecord:
    sentences = [f"{path} version {version} sentence {i} about the quick brown fox." for i in range(n)]
    text = " ".join(sentences)
    vectors = encoder.encode(sentences, "passage")
    chunks, pos = [], 0
    for s, v in zip(sentences, vectors):
        chunks.append(ChunkRecord(pos, pos + len(s), "en", 8, v, terms=s.lower()))
        pos += len(s) + 1
    return FileRecord(path, f"{path}-{version}", len(text), 0.0, "text", [DocumentRecord("", path, text, "en", chunks)])


@pytest.fixture
def stores(tmp_path, tiny_encoder):
    """A reader and a writer (holding the lock, as a run does) on one index with /a /b /c committed."""
    db = tmp_path / "idx"
    with Store.open_for_writing(db, tiny_encoder.identity) as writer:
        writer.write_files([_record(p, tiny_encoder, 0) for p in ("/a", "/b", "/c")])
        writer.sync_vectors()
    writer = Store.open_for_writing(db, tiny_encoder.identity)
    reader = Store.open(db)
    yield reader, writer
    reader.close()
    writer.close()


def _commit_when(reader, sql_part: str, action):
    """Run `action` (a commit by the writer) just before the reader's first statement containing sql_part."""
    execute = reader.documents.db.execute
    done = []

    def wrapped(sql, *args, **kwargs):
        if sql_part in sql and not done:
            done.append(sql)
            action()
        return execute(sql, *args, **kwargs)

    reader.documents.db.execute = wrapped
    return done


def _paths(hits):
    return sorted(h.path for h in hits)


def test_a_commit_between_vector_search_and_row_lookup_does_not_hide_a_document(stores, tiny_encoder):
    from search.searcher import search

    reader, writer = stores
    done = _commit_when(reader, "from chunks c join documents", lambda: writer.write_files([_record("/b", tiny_encoder, 1)]))
    hits = search(reader, tiny_encoder, "quick brown fox", k=100)
    assert done, "the commit was not triggered"
    assert _paths(hits) == ["/a", "/b", "/c"]  # the state before the commit, /b's old version included
    assert {h.chunk_id for h in hits} <= set(range(1, 10))
    hits = search(reader, tiny_encoder, "quick brown fox", k=100)  # the next search sees the commit
    assert _paths(hits) == ["/a", "/b", "/c"] and max(h.chunk_id for h in hits if h.path == "/b") > 9


def test_vectors_rebuilt_while_a_batch_commits(stores, tiny_encoder):
    """No FAISS file for the generation (a first run): a reader reads every vector from SQLite
    while the run commits more: it must read one generation, not crash or invent ids."""
    reader, writer = stores
    for p in reader.dir.glob("vectors-*"):
        p.unlink()  # as in a first run: no FAISS file yet
    done = _commit_when(reader, "vector from chunks", lambda: writer.write_files([_record("/d", tiny_encoder, 0, n=5)]))
    index = reader.vectors.index()
    assert done, "the commit was not triggered"
    assert index.ntotal == 9 and sorted(_ids(index)) == list(range(1, 10))
    assert reader.vectors.index().ntotal == 14  # the next generation


def _ids(index):
    import faiss

    return faiss.vector_to_array(index.id_map).tolist()


@pytest.mark.parametrize("first_run", [False, True], ids=["rerun", "first-run"])
def test_a_run_in_progress_is_not_reported_as_damage(stores, tiny_encoder, caplog, first_run):
    reader, writer = stores
    if first_run:
        for p in reader.dir.glob("vectors-*"):
            p.unlink()  # no FAISS file has been written yet
    writer.write_files([_record("/d", tiny_encoder, 0)])  # committed; its FAISS file comes at the end of the run
    with caplog.at_level(logging.WARNING):
        from search.searcher import search

        hits = search(reader, tiny_encoder, "quick brown fox", k=100)
    assert _paths(hits) == ["/a", "/b", "/c", "/d"]  # the committed batch is searchable at once
    assert not caplog.records, caplog.text


def test_a_run_finishing_under_a_reader_is_not_an_error(stores, tiny_encoder, monkeypatch):
    """The reader picks the newest FAISS file just as the run's final sync replaces it."""
    reader, writer = stores
    writer.write_files([_record("/d", tiny_encoder, 0)])
    newest = reader.vectors._newest_file

    def racing():
        path = newest()
        writer.sync_vectors()  # writes the new generation's file and deletes the one just picked
        return path

    monkeypatch.setattr(reader.vectors, "_newest_file", racing)
    index = reader.vectors.index()
    assert sorted(_ids(index)) == sorted(int(i) for i in np.arange(1, 13))


def test_a_reader_asking_whether_a_run_is_in_progress_does_not_refuse_a_run(tmp_path, tiny_encoder):
    """`info` (and a reader without vectors for the generation) probe the write lock with a shared
    flock for an instant; an index run starting just then must not take that for another run."""
    db = tmp_path / "idx"
    with Store.open_for_writing(db, tiny_encoder.identity):
        pass
    fd = os.open(db / "write.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # the probe, held 0.1 s here instead of microseconds
    release = threading.Timer(0.1, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd)))
    release.start()
    try:
        with Store.open_for_writing(db, tiny_encoder.identity) as store:
            assert store.documents.generation == 0
    finally:
        release.join()
