"""The command line: `xlsearch` (console script) or `python -m cli`, over the Python API."""

from .main import cli, main

__all__ = ["cli", "main"]
