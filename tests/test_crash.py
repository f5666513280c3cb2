"""Crash safety: `xlsearch index` SIGKILLed at random moments, then re-run, ends as a clean build.

Each trial starts a real `xlsearch index` process (committing every few chunks, so kills land
between, inside and after commits), kills it after a random delay drawn over the span of a whole
run (a quarter of the trials) or of its writing phase (the rest), re-runs the same command to
completion (in-process), and checks: the index opens, every file is indexed
exactly once with the clean build's chunks, nothing is duplicated or lost, and search results
equal the clean build's.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from cli import cli
from storage.schema import SQLITE_NAME

TRIALS = 20
QUERIES = ["quick brown fox", "搜索引擎", "install the package", "图层 蒙版"]
_EN = "the quick brown fox jumps over the lazy dog search engines rank documents by relevance".split()
_ZH = list("快速的棕色狐狸跳过了懒狗搜索引擎按照与查询的相关性对文档进行排序")

pytestmark = pytest.mark.slow


def _corpus(root, n_files=24, seed=0):
    rng = random.Random(seed)
    root.mkdir()
    for i in range(n_files):
        if i % 2:
            text = "。".join("".join(rng.choices(_ZH, k=rng.randint(8, 20))) for _ in range(rng.randint(3, 8))) + "。"
        else:
            text = ". ".join(" ".join(rng.choices(_EN, k=rng.randint(5, 12))) for _ in range(rng.randint(3, 8))) + "."
        (root / f"doc{i:02d}.{'md' if i % 3 else 'txt'}").write_text(text, encoding="utf-8")
    return root


def _index_cmd(docs, db, model):
    return [sys.executable, "-m", "cli", "-q", "index", str(docs), "--db", str(db), "--model", str(model),
            "--max-tokens", "16", "--overlap-tokens", "0", "--batch-size", "2", "--commit-every", "4", "--json"]


def _state(db, model):
    """What a finished index holds: per file its chunk count, plus every query's ranked hits."""
    with sqlite3.connect(db / SQLITE_NAME) as conn:
        duplicates = conn.execute("select path from files group by path having count(*) > 1").fetchall()
        assert not duplicates, f"files indexed twice: {duplicates}"
        per_file = dict(conn.execute(
            "select f.path, count(c.id) from files f join documents d on d.file_id = f.id join chunks c on c.doc_id = d.id group by f.path"
        ).fetchall())
        orphans = conn.execute("select count(*) from chunks where doc_id not in (select id from documents)").fetchone()[0]
        assert orphans == 0, "chunks without a document"
    from models.torch_encoder import TorchEncoder
    from search.searcher import search
    from storage.store import Store

    with Store.open(db) as store:
        assert store.vectors.index().ntotal == sum(per_file.values()), "FAISS and SQLite disagree"
        encoder = TorchEncoder(model)
        hits = {q: [(h.key, round(h.score, 4)) for h in search(store, encoder, q, k=5)] for q in QUERIES}
    return per_file, hits


def _wait_for(path, proc, limit=120.0):
    end = time.monotonic() + limit
    while not path.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.01)


def _timed_run(docs, db, model):
    """A clean run: (seconds until its database appeared, seconds in all)."""
    began = time.monotonic()
    proc = subprocess.Popen(_index_cmd(docs, db, model), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(db / SQLITE_NAME, proc)
    appeared = time.monotonic() - began
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["added"] == 24
    return appeared, time.monotonic() - began


def test_sigkill_at_random_moments_then_rerun_equals_a_clean_build(tmp_path, tiny_model_dir):
    docs = _corpus(tmp_path / "docs")
    clean = tmp_path / "clean"
    writing_began, run_seconds = _timed_run(docs, clean, tiny_model_dir)
    expected = _state(clean, tiny_model_dir)
    assert len(expected[0]) == 24 and all(expected[1].values())

    rng = random.Random(1)
    killed_mid_run = 0
    for trial in range(TRIALS):
        db = tmp_path / f"trial{trial}"
        proc = subprocess.Popen(_index_cmd(docs, db, tiny_model_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if trial % 4 == 0:  # anywhere, start-up included
            time.sleep(rng.uniform(0, run_seconds))
        else:  # while it writes: from the moment the database appears to the end of a clean run
            _wait_for(db / SQLITE_NAME, proc)
            time.sleep(rng.uniform(0, 0.75 * (run_seconds - writing_began)))  # a busy machine runs slower
        killed_mid_run += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rerun = CliRunner().invoke(cli, _index_cmd(docs, db, tiny_model_dir)[3:])  # in-process: no second start-up
        assert rerun.exit_code == 0, f"trial {trial}: {rerun.output}"
        assert _state(db, tiny_model_dir) == expected, f"trial {trial}: differs from the clean build"
    assert killed_mid_run >= TRIALS // 2, "most kills must land while the run is still going"
