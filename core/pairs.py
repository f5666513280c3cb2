"""Parallel English–Chinese pairs on disk (TSV `english<TAB>chinese`, or JSONL) and where the
shared data lives.

In the bottom layer because three layers read pairs: `models.centering` (language means from
training pairs), `training` (its data) and `cli` (`xlsearch eval`'s default data folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError
from .jsonlines import json_objects


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
    path = Path(path)
    if not path.is_file():
        raise InputError(f'{path}: no such file — expected JSON lines with "en" and "zh" fields')
    with path.open(encoding="utf-8") as f:
        rows = list(json_objects(f, f"{path} ", 'like {"en": "...", "zh": "..."}', InputError))
    for n, row in rows:
        en, zh = row.get("en", row.get("english")), row.get("zh", row.get("chinese"))
        if not isinstance(en, str) or not isinstance(zh, str) or not en.strip() or not zh.strip():
            raise InputError(f"{path} line {n}: expected an object with non-empty \"en\" and \"zh\" strings")
        pairs.append((en, zh))
        if limit and len(pairs) >= limit:
            break
    return pairs


def read_any_pairs(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    path = Path(path)
    return read_pairs_jsonl(path, limit) if path.suffix in (".jsonl", ".json") else read_pairs(path, limit)
