"""An index run whose reading, chunking and embedding are spread over a Ray cluster (Ray Data).

Why: embedding is nearly all of an index run's time and each file's is independent of the
others', so a large collection indexes about N times faster on N cores or GPUs — but only if
everything else stays the single-process run's. The driver therefore keeps what has to be
sequential (discovery, commit batches of whole files, --prune, the vector sync: the same
`IndexRun` as `run_index`), and Ray Data's ordered streaming hands it the workers' results in
discovery order, a block at a time rather than collected: the batches written, and so the chunk
ids SQLite gives out, are the single-process run's, and its vectors agree to float rounding.

Workers read each file and compare its hash with the one the index knows (`examine`, as in the
single-process run), so an unchanged file is read once and never embedded. Each actor loads the
encoder once, from the driver's model path: every node needs the model folder, and the files to
index, at the same paths (a shared file system or identical copies); an actor checks the model
it loaded against the index's (the identity probe) before embedding anything with it.

Failures stay one line and leave whole committed batches only. A file that cannot be read or
parsed is skipped, as in `run_index`; anything else raised in a worker comes back as its batch's
result, so the batches before it are committed first; a worker that dies stops the run too.
Actors are not restarted: Ray Data would otherwise retry a file that kills its worker for ever,
and a rerun resumes where this one stopped anyway.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import platform
import re
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.config import IndexConfig
from core.errors import InputError, ModelError, WorkerError, XlsearchError
from models.encoder import Encoder
from models.identity import ModelIdentity
from models.loading import load_encoder
from storage.records import FileRecord
from storage.store import Store

from .pipeline import IndexRun, embed_files, examine, is_out_of_memory
from .summary import IndexSummary

log = logging.getLogger(__name__)
FILES_PER_BATCH = 16  # most files an actor reads and embeds in one call (one Ray Data block)
RAY_LOGS = "/tmp/ray/session_latest/logs"
Outcome = FileRecord | str | None  # what `examine` says of a file: its record, a skip reason, unchanged


@dataclass
class Failure:
    """What a worker returns for a batch it could not finish (instead of its files' outcomes)."""

    reason: str  # one line: the exception and what the worker was doing
    detail: str = ""  # the worker's traceback, for the log
    out_of_memory: bool = False
    error: XlsearchError | None = None  # a user-facing error (a wrong model folder): raised as it is


def run_index_ray(
    paths: Sequence[Path], store: Store, encoder: Encoder, config: IndexConfig, address: str | None = None, progress: bool = True
) -> IndexSummary:
    """`indexer.pipeline.run_index`, with the changed files read, chunked and embedded by Ray actors.

    `address`: None starts a local cluster on this machine's cores for the run (shut down after
    it, also on error); else the run joins the cluster there, e.g. "ray://head:10001" or "auto",
    and leaves it running. A process already connected to Ray uses that connection. A worker
    that fails raises `WorkerError`; Ray not installed, `InputError`.
    """
    try:
        import ray
        import ray.data  # noqa: F401  (the `data` extra: pandas, pyarrow)
    except ImportError as exc:
        raise InputError(f"indexing with Ray needs Ray Data ({exc}) — pip install 'xlsearch[ray]'") from None
    run = IndexRun(paths, store, config, progress)  # a missing path fails here, before any cluster starts
    if not run.files:
        return run.finish()
    connected = _connect(ray, address)
    try:
        with _ordered_and_quiet():
            for path, (outcome, embedded) in zip(run.files, _outcomes(ray, run, encoder, config)):
                if isinstance(outcome, Failure):
                    raise _failed(run, outcome)
                run.embedded(embedded)
                run.add(path, outcome)
        return run.finish()
    finally:
        if connected:
            ray.shutdown()  # stops a local cluster; only disconnects from one at `address`


class EmbedFiles:
    """A Ray actor: examines and embeds batches of files with its own copy of the encoder."""

    def __init__(self, model_path: str, precision: str, runtime: str, identity: ModelIdentity, config: IndexConfig, device: str | None):
        self.config, self.failure = config, None
        try:
            self.encoder = load_encoder(model_path, None, precision, runtime, device)
            if not self.encoder.identity.same_model(identity):
                raise ModelError(f"the model at {model_path} on the Ray node {platform.node()} is not this index's model — "
                                 "every node needs the same model folder at the same path")
        except Exception as exc:  # returned with the first batch, so the driver reports it in order
            self.failure = _failure(exc, f"loading the model {model_path}")

    def __call__(self, batch: dict) -> dict:
        paths, known = [Path(p) for p in batch["path"]], list(batch["known"])
        if not paths:
            return {"outcome": [], "embedded": []}
        outcomes: list = [self.failure] * len(paths)
        embedded, where = 0, ""
        if self.failure is None:
            try:
                outcomes = []
                for path, sha in zip(paths, known):
                    where = f"reading {path}"
                    outcomes.append(examine(path, sha or None, self.encoder, self.config))
                where = f"embedding {paths[0]}" + (f" and {len(paths) - 1} more files" if len(paths) > 1 else "")

                def count(n: int) -> None:
                    nonlocal embedded
                    embedded += n

                embed_files([o for o in outcomes if isinstance(o, FileRecord)], self.encoder, self.config.batch_size, count)
            except Exception as exc:
                outcomes, embedded = [_failure(exc, where)] * len(paths), 0
        # the windows embedded ride on the batch's first row, so that the driver counts them once
        return {"outcome": [pickle.dumps(o) for o in outcomes], "embedded": [embedded] + [0] * (len(paths) - 1)}


def _outcomes(ray, run: IndexRun, encoder: Encoder, config: IndexConfig) -> Iterator[tuple[Outcome | Failure, int]]:
    """Every discovered file's outcome (and the chunk windows embedded with it), in discovery order."""
    from ray.data import ActorPoolStrategy
    from ray.data.exceptions import ExecutionTimeoutError, SystemException

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    workers = max(1, gpus or int(resources.get("CPU", 1)))  # one actor per GPU, else one single-threaded actor per CPU
    per_batch = max(1, min(FILES_PER_BATCH, math.ceil(len(run.files) / (4 * workers))))  # a few batches per actor at least
    blocks = math.ceil(len(run.files) / per_batch)
    actors = min(workers, blocks)
    items = [{"path": str(p), "known": run.known.get(str(p), "")} for p in run.files]
    args = (str(encoder.path), encoder.precision, "torch" if gpus else encoder.runtime, encoder.identity, config, "cuda" if gpus else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # max_restarts goes as a plain Ray remote argument
        data = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            EmbedFiles, fn_constructor_args=args, batch_size=per_batch, batch_format="numpy",
            compute=ActorPoolStrategy(size=actors), num_cpus=1, num_gpus=1 if gpus else None, max_restarts=0,
        )
    try:
        for batch in data.iter_batches(batch_size=None, batch_format="numpy"):
            for outcome, embedded in zip(batch["outcome"], batch["embedded"]):
                yield pickle.loads(outcome), int(embedded)
    except (ray.exceptions.RayError, SystemException, ExecutionTimeoutError) as exc:
        raise _failed(run, Failure(f"{type(exc).__name__}: {_line(exc)}", str(exc))) from None


def _failed(run: IndexRun, failure: Failure) -> XlsearchError:
    if failure.error is not None:
        return failure.error
    if failure.out_of_memory:
        return run.out_of_memory()
    log.info("the Ray worker's error:\n%s", failure.detail)
    return WorkerError(
        f"a Ray worker failed ({failure.reason}) — files committed before this ({run.summary.added + run.summary.updated}) are kept; "
        f"fix the cause (each node's Ray logs are in {RAY_LOGS}) and run again, or index without Ray"
    )


def _failure(exc: Exception, where: str) -> Failure:
    """Called in an `except` block of a worker."""
    if isinstance(exc, XlsearchError):
        return Failure(str(exc), error=exc)
    return Failure(f"{type(exc).__name__} while {where}: {_line(exc)}", traceback.format_exc(), is_out_of_memory(exc))


def _line(exc: BaseException) -> str:
    """The first line of an exception's message, without Ray's terminal colours, at most 200 characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _connect(ray, address: str | None) -> bool:
    """Start or join a cluster; True when this call connected (and so disconnects at the end)."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}  # our bar and summary speak for the run
    if address is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError) as exc:
        raise InputError(f"cannot join the Ray cluster at {address} ({_line(exc)}) — start one with `ray start --head`, "
                         "or check the address") from None
    return True


@contextlib.contextmanager
def _ordered_and_quiet() -> Iterator[None]:
    """Ray Data in input order, without its progress bars or console log lines (its log file keeps
    them); what was set before is restored after, for a caller that uses Ray Data too."""
    from ray.data import DataContext

    context = DataContext.get_current()
    options = context.execution_options
    saved = (context.enable_progress_bars, context.print_on_execution_start, options.preserve_order)
    console = [h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    levels = [h.level for h in console]
    context.enable_progress_bars, context.print_on_execution_start, options.preserve_order = False, False, True
    for handler in console:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start, options.preserve_order = saved
        for handler, level in zip(console, levels):
            handler.setLevel(level)
