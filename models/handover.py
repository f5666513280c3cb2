"""Indexing that starts at once on ONNX Runtime and moves to PyTorch when PyTorch is ready.

On these CPUs PyTorch embeds large batches 3-11 % faster than ONNX Runtime (benchmarks/runtimes.py),
but importing torch, transformers and sentence-transformers and loading the model takes ~5 s, while
ONNX Runtime is ready in ~1 s. So `xlsearch index` under `--runtime auto` starts embedding with
ONNX Runtime and loads PyTorch in a background thread; each later call to `encode` (one per commit
batch of chunks) runs on PyTorch once it has loaded. A small job — no call with `HANDOVER_TEXTS`
texts or more — never loads PyTorch at all. Both give the same vectors to float rounding,
so where the switch falls changes nothing in the index. Tokens (chunking) always come from the
first encoder, so chunk boundaries do not depend on timing either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from .encoder import Encoder

log = logging.getLogger(__name__)


class HandoverEncoder(Encoder):
    HANDOVER_TEXTS = 128  # a call this large starts loading the second encoder

    def __init__(self, first: Encoder, load_second: Callable[[], Encoder]):
        self.first = first
        self._load_second = load_second
        self._second: Future | None = None
        for attr in ("path", "name", "dim", "max_seq_length", "prompts", "precision", "pad_id"):
            setattr(self, attr, getattr(first, attr))
        self._identity = None
        self._announced = False

    @property
    def runtime(self) -> str:  # what the next batch runs on
        return self._current().runtime

    def _start_loading(self) -> None:
        """In a daemon thread: a run that ends while PyTorch is still loading need not wait for it."""
        self._second = Future()

        def load() -> None:
            try:
                self._second.set_result(self._load_second())
            except BaseException as exc:
                self._second.set_exception(exc)

        threading.Thread(target=load, name="load-torch", daemon=True).start()

    def _current(self) -> Encoder:
        if self._second is not None and self._second.done():
            try:
                second = self._second.result()
            except Exception as exc:  # PyTorch failed to load: the ONNX path carries on
                if not self._announced:
                    log.warning("PyTorch did not load (%s); embedding on with ONNX Runtime", exc)
                    self._announced = True
                return self.first
            if not self._announced:
                log.info("PyTorch is ready: embedding on with it")
                self._announced = True
            return second
        return self.first

    @property
    def identity(self):
        return self.first.identity

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.first.count_tokens(texts)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.first.token_spans(text)

    def encode(self, texts: Sequence[str], kind: str = "passage", batch_size: int = 32,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        if self._second is None and len(texts) >= self.HANDOVER_TEXTS:
            self._start_loading()
        return self._current().encode(texts, kind, batch_size, on_batch)

    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        return self.first.encode_queries(queries)
