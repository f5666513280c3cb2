"""The seam between the document store and whatever searches vectors.

SQLite keeps every chunk's vector: it is the source of truth. A vector store is a searchable copy
of those vectors, keyed by chunk id, that can always be rebuilt from SQLite — which is how a
crash between the two writes is repaired. `FaissVectorStore` (storage.faiss_store) keeps the copy
in a FAISS file beside the database; `MilvusVectorStore` (storage.milvus_store) in a Milvus
collection. Each implements these few methods and the rest of xlsearch does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class VectorFilter:
    """What a search may return, for a vector store that can filter as it searches (Milvus).

    A store may ignore it (FAISS does) or match more than it allows: callers check rows again.
    """

    lang: str | None = None
    path_glob: str | None = None  # fnmatch pattern on the full path
    file_types: tuple[str, ...] = ()
    modified_after: float | None = None  # file mtime, seconds since the epoch
    modified_before: float | None = None


class VectorStore(Protocol):
    kind: str  # recorded in `info`, e.g. "faiss"

    def search(self, queries: np.ndarray, k: int, where: VectorFilter | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine) for each row of `queries` (L2-normalised), best first;
        `where` narrows the search where the engine can (callers filter rows again).

        Reads see the document store's current snapshot: ids deleted since the copy was made
        may still come back, and callers skip ids that the document store no longer has.
        """
        ...

    def count(self) -> int:
        """How many vectors a search looks through."""
        ...

    def sync(self) -> None:
        """After a writer's last commit: make the copy match the document store, durably."""
        ...

    def reset(self) -> None:
        """The index settings changed (e.g. the index type): discard the copy; `sync` rebuilds it."""
        ...

    def in_sync(self) -> bool:
        """Whether the durable copy matches the document store's current generation."""
        ...

    def close(self) -> None:
        """Let go of connections (a Milvus client); the store is not used after this."""
        ...
