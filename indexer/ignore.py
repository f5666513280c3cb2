""".gitignore rules for folder walks: what a user keeps out of git is usually not worth searching.

Covers git's semantics for the common cases — blank lines, `#` comments, `!` negation, a trailing
`/` for folders only, a leading or inner `/` anchoring a pattern to its .gitignore's folder, `*`,
`?`, `[...]` and `**` — without a dependency. The last matching rule decides, and rules in a deeper
.gitignore override those above it. As in git, a file inside an ignored folder cannot be
re-included: the walk never enters that folder. Only the walk root's .gitignore and nested ones
are read (not those above the root, nor .git/info/exclude or the global excludes file).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IGNORE_FILE = ".gitignore"


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    negate: bool  # "!pattern": re-include what an earlier rule ignored
    dir_only: bool  # "pattern/": folders only
    anchored: bool  # a "/" at the start or in the middle: relative to the .gitignore's folder, not any level


def parse_rule(line: str) -> Rule | None:
    """One .gitignore line as a rule; None for blank lines and comments."""
    line = re.sub(r"(?<!\\) +$", "", line.rstrip("\r\n"))  # trailing spaces count only when escaped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate or line.startswith(("\\!", "\\#")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    return Rule(re.compile(translate(line.lstrip("/"))), negate, dir_only, anchored)


def translate(pattern: str) -> str:
    """A gitignore glob as a regular expression over a "/"-separated relative path."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")  # zero or more folders
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*")  # everything inside
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")  # other runs of "*" are ordinary stars, as in git
            while i < n and pattern[i] == "*":
                i += 1
            continue
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            cls, i = _char_class(pattern, i)
            out.append(cls)
        elif pattern[i] == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out) + r"\Z"


def _char_class(pattern: str, start: int) -> tuple[str, int]:
    """`[...]` at `start` as a regex class and the index after it; an unclosed `[` is literal."""
    end = pattern.find("]", start + 2 if pattern[start + 1 : start + 2] in ("!", "^", "]") else start + 1)
    if end < 0:
        return re.escape("["), start + 1
    body = pattern[start + 1 : end]
    negated = body[:1] in ("!", "^")
    body = body[1:] if negated else body
    body = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"[{'^/' if negated else ''}{body}]", end + 1


@dataclass(frozen=True)
class IgnoreFile:
    """The rules of one .gitignore, applying to paths under its folder."""

    folder: Path
    rules: tuple[Rule, ...]

    @classmethod
    def read(cls, folder: Path) -> IgnoreFile | None:
        """`folder`'s .gitignore, or None when it has none (or none that can be read)."""
        path = folder / IGNORE_FILE
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s: cannot read (%s) — its rules are not applied", path, exc.strerror or exc)
            return None
        rules = tuple(r for r in map(parse_rule, text.splitlines()) if r)
        return cls(folder, rules) if rules else None

    def verdict(self, path: Path, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a `!` rule, None: no rule matches."""
        rel = path.relative_to(self.folder).as_posix()
        name = rel.rsplit("/", 1)[-1]
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel if rule.anchored else name):
                return not rule.negate
        return None


@dataclass(frozen=True)
class Ignorer:
    """The .gitignore files that apply inside one folder of a walk: its own and those above it."""

    files: tuple[IgnoreFile, ...] = ()

    def descend(self, folder: Path) -> Ignorer:
        """The rules inside `folder`: these plus `folder`'s own .gitignore."""
        own = IgnoreFile.read(folder)
        return Ignorer((*self.files, own)) if own else self

    def ignored(self, path: Path, is_dir: bool = False) -> bool:
        for f in reversed(self.files):  # the deepest .gitignore with an opinion decides
            verdict = f.verdict(path, is_dir)
            if verdict is not None:
                return verdict
        return False
