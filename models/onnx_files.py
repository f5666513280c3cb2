"""Where a model folder's exported ONNX graph lives and what it records (no onnxruntime, no torch).

`<model>/onnx/` holds `model.onnx` (the transformer: input_ids, attention_mask → last_hidden_state,
the layout sentence-transformers' own ONNX backend loads), its weights in `model.onnx.data` (an
external-data file ONNX Runtime memory-maps, so a session opens in a fraction of a second),
`tokenizer.json` (the tokenizer exactly as transformers configured it) and `xlsearch_onnx.json`:
what it was exported from and the pooled vector of a probe text, which the runtime checks at
load so that a truncated, damaged or foreign graph is refused instead of returning wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.errors import ModelError

ONNX_DIR = "onnx"
GRAPH = "model.onnx"
DATA = "model.onnx.data"
TOKENIZER = "tokenizer.json"
RECORD = "xlsearch_onnx.json"
FORMAT = 1
# int8 for queries (models/onnx_int8.py), built from the export on first use; its data file holds
# the int8 weights only, the tensors it leaves fp32 are read from DATA
INT8_GRAPH = "model.int8.onnx"
INT8_DATA = "model.int8.onnx.data"
INT8_RECORD = "xlsearch_onnx_int8.json"


def onnx_dir(model: Path) -> Path:
    return Path(model) / ONNX_DIR


def graph_file(model: Path) -> Path:
    return onnx_dir(model) / GRAPH


def int8_graph_file(model: Path) -> Path:
    return onnx_dir(model) / INT8_GRAPH


def rebuild_hint(model: Path) -> str:
    return f"rebuild it with `xlsearch model export-onnx --model {model} --force`, or search with --runtime torch"


def transformer_dir(model: Path) -> Path:
    """The folder of the model's Transformer module (its config.json and weights)."""
    model = Path(model)
    modules = model / "modules.json"
    if modules.exists():
        first = json.loads(modules.read_text(encoding="utf-8"))[0]
        return model / first.get("path", "")
    return model


def weights_digest(model: Path) -> dict:
    """What identifies the transformer's weights without reading all of them: the size, the
    safetensors header (tensor names, shapes, offsets) and 64 blocks of 16 KiB spread over the
    file, hashed. A copy of the folder matches; retrained weights almost surely do not (every
    transformer layer lies in the blocks' reach)."""
    path = transformer_dir(model) / "model.safetensors"
    if not path.exists():
        raise ModelError(f"{path.parent}: no model.safetensors — only safetensors weights can be exported to ONNX")
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as f:
        header = int.from_bytes(f.read(8), "little")
        digest.update(f.read(min(header, 1 << 24)))
        for i in range(64):
            f.seek(size * i // 64)
            digest.update(f.read(16384))
    config = transformer_dir(model) / "config.json"
    digest.update(config.read_bytes() if config.exists() else b"")
    return {"weights_size": size, "weights_sha256": digest.hexdigest()}


def read_record(model: Path) -> dict:
    """The export record, checked against the folder it lies in; ModelError names what is wrong."""
    folder = onnx_dir(model)
    record_path = folder / RECORD
    for path in (folder / GRAPH, folder / DATA, folder / TOKENIZER, record_path):
        if not path.exists():
            raise ModelError(f"{path}: missing — {rebuild_hint(model)}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        expected_data_size = int(record["data_size"])
        _ = [float(x) for x in record["probe"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{record_path}: unreadable ({exc}) — {rebuild_hint(model)}") from None
    if record.get("format") != FORMAT:
        raise ModelError(f"{record_path}: written by another version of xlsearch — {rebuild_hint(model)}")
    if (folder / DATA).stat().st_size != expected_data_size:
        raise ModelError(f"{folder / DATA}: truncated or replaced ({(folder / DATA).stat().st_size} bytes, "
                         f"{expected_data_size} exported) — {rebuild_hint(model)}")
    if record.get("source") != weights_digest(model):
        raise ModelError(f"{folder / GRAPH}: exported from other weights than {transformer_dir(model)} — {rebuild_hint(model)}")
    return record
