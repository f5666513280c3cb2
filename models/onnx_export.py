"""Export a model folder's transformer to ONNX (`<model>/onnx/`), for the torch-free query path.

The TorchScript-based exporter traces the transformer once with dynamic batch and sequence axes;
the graph is then re-saved with its weights in an external file so that ONNX Runtime can
memory-map them. The export is checked before it is kept: ONNX Runtime must reproduce PyTorch's
pooled vector of a probe text (cosine ≥ 0.9999) on a padded two-row batch, and the folder is
built beside its destination and renamed into place only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from core.errors import ModelError

from .encoder import PROBE_TEXT
from .modelfolder import built_beside, link_or_copy
from .onnx_files import DATA, FORMAT, GRAPH, RECORD, TOKENIZER, onnx_dir, read_record, weights_digest

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(model: Path, force: bool = False) -> Path:
    """`<model>/onnx/` for `model` (unless one is already there and `force` is off); returns it."""
    model = Path(model)
    dest = onnx_dir(model)
    if dest.exists() and not force:
        try:
            read_record(model)
            return dest
        except ModelError as exc:
            log.info("re-exporting: %s", exc)
    from .torch_encoder import TorchEncoder

    encoder = TorchEncoder(model)  # its tokenizer and prompts are the ones the graph must serve
    auto_model = next((m.auto_model for m in encoder._modules if hasattr(m, "auto_model")), None)
    if auto_model is None:
        raise ModelError(f"{model}: no transformer module to export")
    with built_beside(dest) as tmp:
        batch = _check_batch(encoder)
        expected = _torch_pooled(auto_model, *batch)  # before tracing: the tracer leaves the live model altered
        _trace(auto_model, tmp, batch)
        encoder.tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER))
        probe = _check(encoder.path, tmp, batch, expected)
        record = {
            "format": FORMAT, "source": weights_digest(model), "opset": OPSET, "dim": encoder.dim,
            "max_seq_length": encoder.max_seq_length, "prompts": encoder.prompts, "pad_id": encoder.pad_id,
            "data_size": (tmp / DATA).stat().st_size, "probe": [round(float(x), 7) for x in probe],
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.chmod(tmp / DATA, 0o644)  # onnx writes it owner-only; the graph beside it is world-readable
    log.info("exported %s to ONNX: %s", model, dest)
    return dest


def link_export(source: Path, model: Path) -> bool:
    """Give `model` the export of `source` (hard links) if its transformer weights are the same."""
    try:
        if read_record(source)["source"] != weights_digest(model):
            return False
    except ModelError:
        return False
    with built_beside(onnx_dir(model)) as tmp:
        for path in onnx_dir(source).iterdir():
            link_or_copy(str(path), str(tmp / path.name))
    return True


class _LastHidden:
    """input_ids, attention_mask → last_hidden_state (the signature ONNX consumers expect)."""

    def __new__(cls, auto_model):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return Wrapper(auto_model)


def _trace(auto_model, folder: Path, batch: tuple[np.ndarray, np.ndarray]) -> None:
    import onnx
    import torch

    ids, mask = (torch.from_numpy(a) for a in batch)
    axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "last_hidden_state")}
    single = folder / "single.onnx"
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter about the TorchScript exporter
        torch.onnx.export(
            _LastHidden(auto_model.eval()), (ids, mask), str(single), input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )
    graph = onnx.load(str(single))
    onnx.save_model(graph, str(folder / GRAPH), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=DATA, size_threshold=1024)
    single.unlink()


def _check_batch(encoder) -> tuple[np.ndarray, np.ndarray]:
    """The probe text (the record's probe) and a short query padded beside it."""
    texts = [encoder.prompts.get("passage", "") + PROBE_TEXT, encoder.prompts.get("query", "") + "短"]
    seqs = [encoder._prefix_ids + ids + encoder._suffix_ids for ids in encoder._ids(texts)]
    input_ids = np.full((len(seqs), max(len(s) for s in seqs)), encoder.pad_id, np.int64)
    mask = np.zeros_like(input_ids)
    for r, s in enumerate(seqs):
        input_ids[r, : len(s)], mask[r, : len(s)] = s, 1
    return input_ids, mask


def _check(model: Path, folder: Path, batch: tuple[np.ndarray, np.ndarray], expected: np.ndarray) -> np.ndarray:
    """ONNX Runtime's pooled probe vector, after checking the padded batch against PyTorch's."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / GRAPH), providers=["CPUExecutionProvider"])
    input_ids, mask = batch
    hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    cos = (pooled * expected).sum(1) / (np.linalg.norm(pooled, axis=1) * np.linalg.norm(expected, axis=1))
    if cos.min() < 0.9999:
        raise ModelError(f"{model}: the ONNX export does not reproduce the model (cosine {cos.min():.5f}) — use --runtime torch")
    n = int(mask[0].sum())
    single = session.run(None, {"input_ids": input_ids[:1, :n], "attention_mask": mask[:1, :n]})[0]
    return single.mean(axis=1)[0].astype(np.float32)


def _torch_pooled(auto_model, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        hidden = auto_model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        m = torch.from_numpy(mask)[..., None].float()
        return ((hidden * m).sum(1) / m.sum(1)).numpy()
