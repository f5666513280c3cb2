"""The ONNX Runtime runtime: the exported transformer, the tokenizer and the pooling, no torch.

A fresh process needs about a second to embed a query this way: onnxruntime and tokenizers
import in a fraction of a second (torch + transformers + sentence-transformers take seconds),
and the graph's weights are memory-mapped rather than read. What comes after the transformer —
pooling, Normalize, xlsearch's language centering — is a few lines of numpy here; a model folder
with any other module (a Dense layer, say) has no ONNX path and runs on torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.errors import ModelError

from .encoder import PROBE_TEXT, Encoder
from .language_offsets import LanguageOffsets
from .onnx_files import GRAPH, INT8_GRAPH, TOKENIZER, onnx_dir, read_record, rebuild_hint

log = logging.getLogger(__name__)


def post_modules(model: Path) -> tuple[str, list[Callable]]:
    """The pooling mode and the steps after pooling, read from the folder's modules.json."""
    modules_file = Path(model) / "modules.json"
    if not modules_file.exists():  # a plain transformers folder: sentence-transformers pools by mean
        return "mean", []
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    pooling, steps = None, []
    for module in modules[1:]:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        folder = Path(model) / module.get("path", "")
        if kind == "Pooling" and pooling is None:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            pooling = config.get("pooling_mode") or next(
                (m for m in ("mean", "cls", "max") if config.get(f"pooling_mode_{m}_tokens")), None)
            if pooling not in ("mean", "cls") or config.get("include_prompt", True) is False:
                raise ModelError(f"{folder}: pooling {config} has no ONNX path — use --runtime torch")
        elif kind == "Normalize" and pooling is not None:
            steps.append(_normalize)
        elif kind == "LanguageCentering" and pooling is not None:
            steps.append(LanguageOffsets.load(folder))
        else:
            raise ModelError(f"{Path(model)}: module {module.get('type')} has no ONNX path — use --runtime torch")
    return pooling or "mean", steps


def _normalize(emb: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


class OnnxEncoder(Encoder):
    runtime = "onnx"

    def __init__(self, path: Path, precision: str = "fp32"):
        """`precision` "int8": the int8 graph (models/onnx_int8.py), which must have been built."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from .modelfolder import read_marker

        self.path = Path(path)
        folder = onnx_dir(self.path)
        record = read_record(self.path)
        graph, hint, expected = folder / GRAPH, rebuild_hint(self.path), record["probe"]
        if precision == "int8":
            from . import onnx_int8

            graph, hint, expected = folder / INT8_GRAPH, onnx_int8.int8_hint(self.path), onnx_int8.read_int8_record(self.path, record)["probe"]
            self.precision, self.quantisation = "int8", onnx_int8.RECIPE
        elif precision != "fp32":
            raise ModelError(f"--precision {precision} runs on the torch runtime only — use --runtime torch (or auto)")
        self.pooling, steps = post_modules(self.path)
        if steps and steps[-1] is _normalize:
            steps = steps[:-1]  # windows are averaged before the last normalisation, as on torch
        self._steps = steps
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))  # ~0.7 s: 250k pieces
            options = ort.SessionOptions()
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # no busy-waiting after a run: FAISS and SQLite need the cores next (spinning threads
            # doubled the FAISS time of a search at 100k chunks)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime and tokenizers raise their own types for damaged files
            raise ModelError(f"{folder}: cannot load the ONNX graph or tokenizer ({str(exc).splitlines()[0][:200]}) — {hint}") from None
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = int(record.get("pad_id", 0))
        self.dim = int(record["dim"])
        self.max_seq_length = int(record["max_seq_length"])
        self.prompts = dict(record["prompts"])
        self.name = read_marker(self.path).get("name", self.path.name)
        self._init_windows()
        probe = self._pooled_probe()
        expected = np.asarray(expected, np.float32)
        if probe.shape != expected.shape or float(probe @ expected) / (np.linalg.norm(probe) * np.linalg.norm(expected) + 1e-12) < 0.999:
            raise ModelError(f"{graph}: does not give the vectors recorded when it was built (damaged {graph.name}.data?) — {hint}")

    def _pooled_probe(self) -> np.ndarray:
        ids = self._prefix_ids + self._ids([self.prompts.get("passage", "") + PROBE_TEXT])[0] + self._suffix_ids
        return self._transformer(np.asarray([ids], np.int64), np.ones((1, len(ids)), np.int64))[0]

    def _tokenize(self, texts: Sequence[str], special: bool = False) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=special)]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [tuple(span) for span in self.tokenizer.encode(text, add_special_tokens=False).offsets]

    def _transformer(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Pooled transformer output, before any module after pooling."""
        try:
            hidden = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        except Exception as exc:  # ONNX Runtime's own types; a failed allocation is what callers handle
            if "allocate memory" in str(exc):
                raise MemoryError(str(exc)) from exc
            raise
        if self.pooling == "cls":
            return hidden[:, 0].astype(np.float32)
        weights = mask[..., None].astype(np.float32)
        return ((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)).astype(np.float32)

    def _pool(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        emb = self._transformer(input_ids, mask)
        for step in self._steps:
            emb = step(emb, input_ids, mask)
        return emb
