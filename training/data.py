"""Training data: parallel pairs (TSV `english<TAB>chinese`, or JSONL), monolingual text, and
the batch plan — a seeded, length-bucketed order that a resumed run can replay exactly."""

from __future__ import annotations

import random
from pathlib import Path

from core.errors import InputError
from core.pairs import read_any_pairs, read_pairs
from storage.schema import SQLITE_NAME
from storage.store import Store
from storage.store import exists as store_exists


def sample_pairs(pairs: list, n: int | None, seed: int) -> list:
    """A seeded sample of n (all when n is None or larger), in file order."""
    if n is None or n >= len(pairs):
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def training_pairs(train_dir: Path, files: list[str], per_file: int | None, extra: list[str], seed: int,
                   long_per_file: int = 0, long_chars: int = 300) -> list[tuple[str, str]]:
    """Every requested training file (sampled per file), then the user's own pair files.

    `long_per_file` adds a second seeded sample per file, drawn only from pairs whose English side
    has `long_chars` characters or more: a random sample is mostly short sentences, so without it
    nothing holds paragraphs (what an index's chunks are) where the starting model had them."""
    train_dir = Path(train_dir)
    if not train_dir.is_dir():
        raise InputError(f"{train_dir}: no such folder — set data.train_dir to a folder of english<TAB>chinese TSV files")
    paths = [train_dir / f"{name}.tsv" for name in files] if files else sorted(train_dir.glob("*.tsv"))
    if not paths:
        raise InputError(f"{train_dir}: no *.tsv files")
    pairs = []
    for i, path in enumerate(paths):
        every = read_pairs(path)
        sample = sample_pairs(every, per_file, seed + i)
        pairs += sample
        if long_per_file:
            taken = set(sample)
            pairs += sample_pairs([p for p in every if len(p[0]) >= long_chars and p not in taken], long_per_file, seed + i)
    for path in extra:
        pairs += read_any_pairs(Path(path))
    return pairs


def retrieval_pairs(sources: list[str], seed: int) -> list[tuple[str, str]]:
    """Query → passage pairs: built from a named help collection, or read from TSV files."""
    from .page_pairs import libreoffice_pairs

    pairs: list[tuple[str, str]] = []
    for source in sources:
        pairs += libreoffice_pairs(seed=seed) if source == "libreoffice-help" else read_pairs(Path(source))
    if not pairs:
        raise InputError('objectives.retrieval has a weight but data.retrieval_pairs yields no pairs — name "libreoffice-help" '
                         "or TSV files of query<TAB>passage")
    return pairs


def read_monolingual(paths: list[str], limit: int | None = None) -> list[str]:
    """Lines of plain-text files, or the chunk texts of an xlsearch index (its --db folder)."""
    texts: list[str] = []
    for name in paths:
        path = Path(name)
        db_dir = path if path.is_dir() else path.parent if path.name == SQLITE_NAME else None
        if db_dir is not None and store_exists(db_dir):
            with Store.open(db_dir) as store:
                texts += store.documents.chunk_texts()
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
