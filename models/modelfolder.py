"""Derived model folders: a base model's folder plus a change (centering, trained weights).

A derived folder hard-links the base's files instead of copying them (the model file is 470 MB),
is built beside its destination and renamed into place only when complete, so an interrupted
build never leaves a half-written model where a reader would load it. Files that differ from the
base are unlinked before writing, so the base is never touched through a shared link.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are written: reading a marker must not load it
    import torch

MARKER = "xlsearch_model.json"
WEIGHTS = "model.safetensors"


@contextmanager
def built_beside(dest: Path, like: Path | None = None) -> Iterator[Path]:
    """Yield a folder beside `dest` to fill — empty, or a linked copy of `like` — that replaces
    `dest` on success and is removed on error: a reader never sees a half-built folder."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if like is None:
        tmp.mkdir(parents=True)
    else:  # not its ONNX export: a derived folder's weights may differ (models/named.py exports anew)
        shutil.copytree(like, tmp, copy_function=link_or_copy, ignore=shutil.ignore_patterns("onnx"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def derived_folder(base: Path, dest: Path):
    """Yield a linked copy of `base` to edit; on success it replaces `dest`, on error it is removed."""
    return built_beside(dest, like=Path(base))


def rewrite(path: Path, text: str) -> None:
    """Replace a file that may be a hard link to the base model's, without touching the base."""
    path.unlink(missing_ok=True)
    path.write_text(text, encoding="utf-8")


def read_marker(folder: Path) -> dict:
    marker = Path(folder) / MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else {"name": Path(folder).name}


def write_marker(folder: Path, info: dict) -> None:
    rewrite(Path(folder) / MARKER, json.dumps(info, indent=2, ensure_ascii=False))


def weights_dir(folder: Path) -> Path:
    """Where the transformer's config and weights live: the folder itself, or its `hf/` module."""
    folder = Path(folder)
    return folder if (folder / "config.json").exists() else folder / "hf"


def save_patch(tensors: dict[str, torch.Tensor], path: Path, info: dict) -> None:
    """fp16 copies of trained tensors — what ships: the trained layers of e5-small are ~43 MB
    this way, against 470 MB for the whole model. Metadata says how they were made."""
    import torch
    from safetensors.torch import save_file

    half = {k: v.detach().to(torch.float16).cpu().contiguous() for k, v in tensors.items()}
    save_file(half, str(path), metadata={"xlsearch": json.dumps(info, ensure_ascii=False)})


def apply_patch(base: Path, patch: Path, dest: Path, info: dict) -> Path:
    """Base model folder + a patch → a new model folder (the base untouched).

    A patch holds trained tensors that replace the base's, and/or LoRA adapters
    (`<layer>.lora_A`, `<layer>.lora_B`, B pre-scaled) that add B·A to `<layer>.weight`. A patch
    of a shallower student (its metadata names `num_hidden_layers`) keeps only that many layers.
    """
    from safetensors.torch import load_file, save_file

    with derived_folder(base, dest) as tmp:
        weights = weights_dir(tmp) / WEIGHTS
        state = load_file(str(weights))
        tensors = load_file(str(patch))
        layers = patch_info(patch).get("num_hidden_layers")
        if layers is not None:
            state = {k: v for k, v in state.items() if not _layer_at_or_above(k, layers)}
            config = weights_dir(tmp) / "config.json"
            rewrite(config, json.dumps(json.loads(config.read_text()) | {"num_hidden_layers": layers}, indent=2))
        for name, tensor in tensors.items():
            if name.endswith(".lora_B"):
                continue
            if name.endswith(".lora_A"):
                layer = name[: -len(".lora_A")]
                name = f"{layer}.weight"
                if name not in state or f"{layer}.lora_B" not in tensors:
                    raise ValueError(f"{patch}: adapter {layer} does not fit {base}")
                tensor = state[name].float() + tensors[f"{layer}.lora_B"].float() @ tensor.float()
            if name not in state or state[name].shape != tensor.shape:
                raise ValueError(f"{patch}: tensor {name} does not fit {base}")
            state[name] = tensor.to(state[name].dtype)
        weights.unlink()
        save_file(state, str(weights))
        write_marker(tmp, read_marker(tmp) | info)
    return Path(dest)


def patch_info(patch: Path) -> dict:
    """The metadata `save_patch` wrote (how the tensors were made)."""
    from safetensors import safe_open

    with safe_open(str(patch), "pt") as f:
        return json.loads((f.metadata() or {}).get("xlsearch", "{}"))


def _layer_at_or_above(name: str, n: int) -> bool:
    parts = name.split(".")
    return "layer" in parts and parts[parts.index("layer") + 1].isdigit() and int(parts[parts.index("layer") + 1]) >= n


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
