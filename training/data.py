"""Training data: parallel pairs (TSV `english<TAB>chinese`, or JSONL), monolingual text, and
the batch plan — a seeded, length-bucketed order that a resumed run can replay exactly."""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

from xlsearch.errors import InputError


def _numbered_lines(path: Path, expected: str):
    """(line number, line) for the non-blank lines of a UTF-8 file; a missing file says what was expected."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file — expected {expected}")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line.rstrip("\n")


def read_pairs(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """Pairs from a TSV file; a line without exactly one tab is an error naming the line."""
    pairs = []
    for n, line in _numbered_lines(path, "a TSV of english<TAB>chinese pairs"):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise InputError(f"{path} line {n}: expected 'english<TAB>chinese'")
        pairs.append((parts[0], parts[1]))
        if limit and len(pairs) >= limit:
            break
    return pairs


def _shared_parallel_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "parallel"


def default_train_dir() -> Path:
    """`$XLSEARCH_TRAIN_DATA`, else the shared training data beside this checkout."""
    return Path(os.environ.get("XLSEARCH_TRAIN_DATA") or _shared_parallel_dir() / "train")


def default_dev_dir() -> Path:
    """`$XLSEARCH_DEV_DATA`, else the shared dev data beside this checkout."""
    return Path(os.environ.get("XLSEARCH_DEV_DATA") or _shared_parallel_dir() / "dev")


def read_pairs_jsonl(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """Pairs from JSON lines with "en" and "zh" fields (or "english" and "chinese")."""
    pairs = []
    for n, line in _numbered_lines(path, 'JSON lines with "en" and "zh" fields'):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {n}: not valid JSON ({e.msg})") from None
        en = row.get("en", row.get("english")) if isinstance(row, dict) else None
        zh = row.get("zh", row.get("chinese")) if isinstance(row, dict) else None
        if not isinstance(en, str) or not isinstance(zh, str) or not en.strip() or not zh.strip():
            raise InputError(f"{path} line {n}: expected an object with non-empty \"en\" and \"zh\" strings")
        pairs.append((en, zh))
        if limit and len(pairs) >= limit:
            break
    return pairs


def read_any_pairs(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    path = Path(path)
    return read_pairs_jsonl(path, limit) if path.suffix in (".jsonl", ".json") else read_pairs(path, limit)


def sample_pairs(pairs: list, n: int | None, seed: int) -> list:
    """A seeded sample of n (all when n is None or larger), in file order."""
    if n is None or n >= len(pairs):
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def training_pairs(train_dir: Path, files: list[str], per_file: int | None, extra: list[str], seed: int) -> list[tuple[str, str]]:
    """Every requested training file (sampled per file), then the user's own pair files."""
    train_dir = Path(train_dir)
    if not train_dir.is_dir():
        raise InputError(f"{train_dir}: no such folder — set data.train_dir to a folder of english<TAB>chinese TSV files")
    paths = [train_dir / f"{name}.tsv" for name in files] if files else sorted(train_dir.glob("*.tsv"))
    if not paths:
        raise InputError(f"{train_dir}: no *.tsv files")
    pairs = []
    for i, path in enumerate(paths):
        pairs += sample_pairs(read_pairs(path), per_file, seed + i)
    for path in extra:
        pairs += read_any_pairs(Path(path))
    return pairs


def read_monolingual(paths: list[str], limit: int | None = None) -> list[str]:
    """Lines of plain-text files, or the chunk texts of an xlsearch index (its --db folder)."""
    from xlsearch.store import SQLITE_NAME

    texts: list[str] = []
    for name in paths:
        path = Path(name)
        db = path / SQLITE_NAME if path.is_dir() else path
        if db.name == SQLITE_NAME and db.is_file():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                texts += [row[0] for row in conn.execute(
                    'select substr(d.text, c.start + 1, c."end" - c.start) from chunks c join documents d on d.id = c.doc_id order by c.id'
                )]
        elif path.is_file():
            texts += [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        else:
            raise InputError(f"{path}: no such file or index — data.monolingual takes text files or xlsearch --db folders")
    return texts[:limit] if limit else texts


def batch_plan(lengths: list[int], batch_size: int, seed: int, bucket_batches: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length: less padding, same randomness.

    Indices are shuffled, cut into groups of `bucket_batches` batches, sorted by length inside a
    group, cut into batches, and the batches shuffled again. A function of its arguments only, so a
    resumed run replays the same order. A final short batch is dropped (in-batch negatives want
    full batches).
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), group):
        part = sorted(order[start : start + group], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size) if len(part[i : i + batch_size]) == batch_size]
    rng.shuffle(batches)
    return batches
