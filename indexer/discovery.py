"""Which files an index run reads: the paths given, folder walks with their rules (hidden files,
.gitignore, --include/--exclude, binary suffixes), and a first-block look at files of no known
type. Everything left out for a reason the user may not expect is counted or listed, never silent.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from core.config import IndexConfig
from core.errors import FileSkipped, InputError

from .filetypes import SNIFF_BYTES, binary_suffix, detect_type, file_type
from .ignore import Ignorer
from .summary import IndexSummary


def check_paths(paths: Sequence[Path]) -> list[Path]:
    """Resolve the paths to index; a missing one is fatal before anything is written."""
    if not paths:
        raise InputError("nothing to index — give one or more files or folders: xlsearch index PATH...")
    resolved = []
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            if p.is_symlink():
                raise InputError(f"{p}: broken symbolic link (its target is missing, or it loops) — fix or remove the link")
            raise InputError(f"{p}: no such file or folder — check the path")
        resolved.append(p.resolve())
    return resolved


def holds_at_least(roots: Sequence[Path], limit: int) -> bool:
    """Whether the files under `roots` add up to `limit` bytes or more — counted raw (hidden and
    ignored files too) and only until the limit is reached, so a huge folder costs a few stats.
    It tells a small indexing job from a large one before a model is chosen for it."""
    total = 0
    for path in _files_under(roots):
        try:
            total += os.stat(path).st_size
        except OSError:
            continue
        if total >= limit:
            return True
    return False


def _files_under(roots: Sequence[Path]) -> Iterator[str]:
    for root in roots:
        if root.is_file():
            yield str(root)
            continue
        for folder, _, names in os.walk(root):
            yield from (os.path.join(folder, name) for name in names)


def discover(roots: Sequence[Path], summary: IndexSummary, config: IndexConfig | None = None) -> list[Path]:
    """Files under `roots` to read; files named in `roots` that cannot be indexed are skipped.

    A folder walk passes over hidden files and folders, what .gitignore files ignore (unless
    `config.gitignore` is off), what --include/--exclude leave out (counted as excluded) and
    files with a binary suffix; it does not follow symlinked folders (no loops). A file of no
    known type is taken when its first block reads as text, and skipped with the reason if not.
    """
    walk = _Discovery(summary, config or IndexConfig())
    for root in roots:
        if root.is_file():
            walk.named(root)
        else:
            walk.folder(root)
    return list(walk.files)


@dataclass
class _Discovery:
    summary: IndexSummary
    config: IndexConfig
    files: dict[Path, None] = field(default_factory=dict)  # ordered, without duplicates

    def skip(self, path: Path | str, reason: str) -> None:
        self.summary.skipped.append((str(path), reason))

    def named(self, path: Path) -> None:
        """A file given on the command line: whatever keeps it out is said, never silent."""
        reason = _left_out_by(path.name, self.config, is_dir=False)
        if reason:
            self.summary.found += 1
            self.skip(path, reason)
            return
        self.take(path)

    def folder(self, root: Path) -> None:
        unlistable = lambda e: self.skip(e.filename, f"cannot list folder: {e.strerror}")  # noqa: E731
        ignorers = {root.parent: Ignorer()}  # each folder's rules: its parent's plus its own .gitignore
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unlistable):
            here = Path(dirpath)
            ignorer = ignorers[here.parent]
            ignorers[here] = ignorer = ignorer.descend(here) if self.config.gitignore else ignorer
            dirnames[:] = [d for d in sorted(dirnames) if self.walks_into(root, here / d, ignorer)]
            for name in sorted(filenames):
                path = here / name
                if self.walks_into(root, path, ignorer, is_dir=False) and not binary_suffix(path):
                    self.take(path)

    def walks_into(self, root: Path, path: Path, ignorer: Ignorer, is_dir: bool = True) -> bool:
        """Whether the walk looks at `path`: not hidden, not .gitignored, not filtered out."""
        if path.name.startswith(".") or ignorer.ignored(path, is_dir):
            return False
        if _left_out_by(path.relative_to(root).as_posix(), self.config, is_dir):
            self.summary.excluded += 1
            return False
        return True

    def take(self, path: Path) -> None:
        """Keep `path` to be read, or skip it with the reason (link loop, unreadable, not text)."""
        try:
            real = path.resolve() if path.is_symlink() else path
        except (OSError, RuntimeError):  # a loop: RuntimeError before Python 3.13, OSError after
            self.summary.found += 1
            self.skip(path, "symbolic link loop — fix or remove the link")
            return
        if real in self.files:
            return
        self.summary.found += 1
        try:
            sniff_type(real)
        except FileSkipped as exc:
            self.skip(real, str(exc))
            return
        except OSError as exc:
            self.skip(real, f"cannot read: {exc.strerror or exc}")
            return
        self.files[real] = None


def _left_out_by(rel: str, config: IndexConfig, is_dir: bool) -> str | None:
    """Which option keeps `rel` (relative to its root) out, if any: --include, then --exclude.

    Patterns match the relative path or the base name (fnmatch: `*` also crosses "/"); --include
    only narrows files, so a walk still enters every folder.
    """
    name = rel.rsplit("/", 1)[-1]
    matches = lambda globs: any(fnmatchcase(rel, g) or fnmatchcase(name, g) for g in globs)  # noqa: E731
    if config.include and not is_dir and not matches(config.include):
        return "not matched by --include"
    if matches(config.exclude):
        return "excluded by --exclude"
    return None


def sniff_type(path: Path) -> str:
    """`path`'s type, reading no more than its first block (and nothing for a known suffix).

    Raises FileSkipped when it is not text, OSError when it cannot be read.
    """
    if file_type(path) or binary_suffix(path):
        return detect_type(path, b"")  # the suffix decides; a known type is read in full later (a dangling link fails there)
    if not stat.S_ISREG(path.stat().st_mode):
        raise FileSkipped("not a regular file (a pipe, socket or device) — index regular files only")
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES + 1)
    return detect_type(path, head)
