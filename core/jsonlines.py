"""JSON lines, read one way everywhere: documents (indexer), training pairs, `xlsearch embed`.

A bad line stops the read with one error that names where it is (file or stdin and line
number) and what was expected, so the user can fix that line and run again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from .errors import XlsearchError


def json_objects(
    lines: Iterable[str], where: str, expected: str, error: type[XlsearchError]
) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line.

    `where` prefixes the line number ("" or "stdin " or "pairs.jsonl "), `expected` describes
    an object (`like {"text": "..."}`); a line that is not JSON, or not an object, raises `error`.
    """
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}line {n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise error(f"{where}line {n}: expected a JSON object {expected}, found {type(obj).__name__}")
        yield n, obj
