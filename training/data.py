"""Readers for parallel data: TSV `english<TAB>chinese`, one pair a line, no header."""

from __future__ import annotations

import os
from pathlib import Path

from xlsearch.errors import InputError


def read_pairs(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """Pairs from a TSV file; a line without exactly one tab is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file — expected a TSV of english<TAB>chinese pairs")
    pairs = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
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
