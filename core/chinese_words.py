"""Chinese word segmentation (jieba, search mode) that a short query can afford in a fresh process.

jieba keeps its dictionary as one Python dict of ~500k words and prefixes; loading it (its own
marshal cache) takes ~0.7 s, a third of a fresh `xlsearch search` for a Chinese query that needs
a handful of lookups. So the dictionary is also copied once into an SQLite file under
$XLSEARCH_HOME, and short texts are cut by a jieba tokenizer whose dictionary is a view of that
file: the same words, the same frequencies, the same algorithm, so the same words out
(tests/test_terms.py checks) at a few milliseconds' start. A lookup on disk costs ~10x one in
memory, so a process switches to jieba's own dictionary once it has cut more than a few
queries' worth of text (an index run, a busy server), and never looks back.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from .config import xlsearch_home

SHORT_BUDGET = 2000  # characters a process cuts on disk before loading the whole dictionary pays
_lock = threading.RLock()  # the first short cut may load the full dictionary to copy it
_full = None  # jieba's default tokenizer, once its dictionary is loaded
_short = None  # a tokenizer over the dictionary's SQLite copy
_short_chars = 0  # characters cut with it so far


def cut_for_search(run: str) -> list[str]:
    """jieba's search-mode words of a run of Han characters."""
    global _short_chars
    tokenizer = None
    if _full is None and _short_chars + len(run) <= SHORT_BUDGET:
        tokenizer = _short_tokenizer()
        _short_chars += len(run)
    tokenizer = tokenizer or _full_tokenizer()
    return [w for w in tokenizer.cut_for_search(run) if w.strip()]


def _full_tokenizer():
    global _full
    with _lock:
        if _full is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _full = jieba.dt
    return _full


def _short_tokenizer():
    """The tokenizer over the SQLite copy (written on first use), or None if it cannot be had."""
    global _short
    with _lock:
        if _short is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            try:
                words = DictionaryFile(_dictionary_path(jieba))
            except (OSError, sqlite3.Error) as exc:  # no room, read-only home: jieba's own will do
                logging.getLogger(__name__).debug("no jieba dictionary copy: %s", exc)
                return None
            tokenizer = jieba.Tokenizer()
            tokenizer.FREQ, tokenizer.total, tokenizer.initialized = words, words.total, True
            _short = tokenizer
    return _short


def _dictionary_path(jieba) -> Path:
    """The SQLite copy of jieba's dictionary, named after the dictionary file it copies."""
    source = Path(jieba.__file__).parent / "dict.txt"
    stat = source.stat()
    path = xlsearch_home() / "jieba" / f"dict-{jieba.__version__}-{stat.st_size}-{int(stat.st_mtime)}.sqlite"
    if not path.exists():
        _write_copy(path)
    return path


def _write_copy(path: Path) -> None:
    tokenizer = _full_tokenizer()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("create table words (word text primary key, freq integer) without rowid")
        conn.executemany("insert into words values (?, ?)", tokenizer.FREQ.items())
        conn.execute("insert into words values ('', ?)", [tokenizer.total])  # the total, under a key no lookup uses
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)


class DictionaryFile:
    """jieba's FREQ (word or prefix → count, 0 for a prefix only) as lookups in the SQLite copy."""

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.RLock()  # the first short cut may load the full dictionary to copy it
        self.total = self[""]

    def get(self, word: str, default=None):
        if not word:
            return default
        return self._lookup(word, default)

    def _lookup(self, word: str, default=None):
        with self._lock:
            row = self._conn.execute("select freq from words where word = ?", [word]).fetchone()
        return default if row is None else row[0]

    def __getitem__(self, word: str) -> int:
        freq = self._lookup(word)
        if freq is None:
            raise KeyError(word)
        return freq

    def __contains__(self, word: str) -> bool:
        return bool(word) and self._lookup(word) is not None
