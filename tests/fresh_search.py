"""A CLI search in a fresh interpreter, reporting which heavy modules it imported (the point of
the ONNX path is that it imports none of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers")


def fresh_search(db: Path, *options: str, watched: tuple[str, ...] = HEAVY) -> dict:
    """`xlsearch search fox --db DB OPTIONS --json` in a new process: {"hits": n, "heavy": [imported of `watched`]}."""
    script = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from cli import cli\n"
        f"r = CliRunner().invoke(cli, ['search', 'fox', '--db', {str(db)!r}, *{list(options)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(json.dumps({'hits': len(json.loads(r.stdout)['hits']),"
        f" 'heavy': sorted(m for m in {tuple(watched)!r} if m in sys.modules)}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])
