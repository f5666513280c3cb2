"""The `xlsearch` command: one verb per step (index, search, info, serve, embed, eval, train, model).

Commands live in `index_commands` (over an index, through the Python API) and `model_commands`
(over models); the root group in `group` owns logging and the one error edge.
"""

from __future__ import annotations

import os
import sys

import click

from .group import cli
from .index_commands import index, info, search, serve
from .model_commands import embed, eval_command, model, train_command

for command in (index, search, info, embed, serve, eval_command, train_command, model):
    cli.add_command(command)


def main() -> None:
    """Console entry point; Ctrl-C ends quietly with status 130.

    The process is the command's own, so it may declare it never reaches a model hub: every
    model xlsearch loads is a local folder (a library user's process is left as it is).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        cli()
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
