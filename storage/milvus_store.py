"""Milvus as the vector store: Milvus Lite (a folder inside the index) or a Milvus server.

SQLite stays the source of truth (text, metadata, hashes and every vector); the Milvus
collection is a searchable copy keyed by chunk id, with the scalar fields filters need (language,
document, path, file type, modified time) so that a filtered search is filtered inside Milvus.

Keeping the two in step: a marker file beside the database records which collection holds which
SQLite generation and the highest chunk id copied. A run writes SQLite in batches and brings
Milvus up to date once at its end (`sync`: delete the ids SQLite no longer has, upsert the new
ones, flush, then the marker). A crash between the two leaves the marker behind SQLite, which
the next run — or the next reader, when no run holds the write lock — repairs. Until then a
reader searches Milvus plus, in memory, the chunks added since the marker (chunk ids only grow,
so those are the ids above its maximum); deleted chunks are skipped by the caller, which reads
rows by id. Milvus Lite lets one process open its folder at a time: a process that finds it
open elsewhere searches this index's vectors from SQLite in memory instead, and says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import MILVUS_INDEXES, MILVUS_MAX_TOPK
from core.errors import InputError, VectorStoreError

from . import faiss_files as ff
from .documents import DocumentStore
from .lock import flock_held, write_lock_held
from .vector_store import VectorFilter

log = logging.getLogger(__name__)

LITE = "milvus-lite"
LITE_FOLDER = "milvus.db"  # Milvus Lite's data folder inside the index directory
MARKER = "milvus-sync.json"
_SERVER = re.compile(r"^milvus://(?P<host>[^/:]+):(?P<port>\d+)(?:/(?P<collection>[A-Za-z_][A-Za-z0-9_]*))?/?$")
_UPSERT_ROWS = 2000
# pymilvus pings every 10 s; Milvus Lite's in-process gRPC server answers a call that runs for minutes
# (building an HNSW index over a large collection) with GOAWAY "too_many_pings", and pymilvus's retry then
# fails ("index already exists"): found by benchmarks/vector_stores.py at 1M vectors. No need to ping our own process.
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 3_600_000, "grpc.keepalive_permit_without_calls": False}


@dataclass(frozen=True)
class MilvusTarget:
    """Where the vectors live: `spec` as recorded in the index, the client URI, the collection."""

    spec: str
    uri: str
    collection: str
    lite: bool


def milvus_target(spec: str, db_dir: Path) -> MilvusTarget:
    """Parse --vector-store milvus-lite | milvus://HOST:PORT[/COLLECTION]. A server without a
    collection name gets a new unique one, so two indexes never share (and clobber) one."""
    if spec == LITE:
        return MilvusTarget(LITE, str(Path(db_dir).resolve() / LITE_FOLDER), "chunks", True)
    m = _SERVER.match(spec)
    if not m:
        raise InputError(
            f"--vector-store {spec!r} is not understood — use faiss, milvus-lite or milvus://HOST:PORT[/COLLECTION] "
            "(a collection name is letters, digits and underscores)"
        )
    collection = m["collection"] or f"xlsearch_{uuid.uuid4().hex[:12]}"
    return MilvusTarget(f"milvus://{m['host']}:{m['port']}/{collection}", f"http://{m['host']}:{m['port']}", collection, False)


def check_ready(target: MilvusTarget) -> None:
    """Before a run writes anything: pymilvus (and Milvus Lite) installed, a server answering."""
    try:
        from pymilvus import MilvusClient

        if target.lite:
            import milvus_lite  # noqa: F401
    except ImportError:
        raise InputError(f"--vector-store {target.spec} needs pymilvus and milvus-lite: `pip install 'xlsearch[milvus]'`") from None
    if target.lite:
        return
    try:
        MilvusClient(target.uri, timeout=10).close()
    except Exception as exc:
        raise VectorStoreError(f"cannot reach Milvus at {target.uri} ({_reason(exc)}) — start the server, or check --vector-store") from None


def milvus_expression(where: VectorFilter | None) -> str:
    """A Milvus boolean expression selecting at least what `where` allows (the caller checks
    rows again, so a glob Milvus cannot express exactly may match more, never less)."""
    if where is None:
        return ""
    parts = []
    if where.lang:
        parts.append(f"lang == {_quoted(where.lang)}")
    if where.file_types:
        parts.append(f"file_type in [{', '.join(_quoted(t) for t in where.file_types)}]")
    if where.modified_after is not None and np.isfinite(where.modified_after):
        parts.append(f"mtime >= {where.modified_after!r}")
    if where.modified_before is not None and np.isfinite(where.modified_before):
        parts.append(f"mtime < {where.modified_before!r}")
    if where.path_glob and not any(c in where.path_glob for c in "[]"):  # fnmatch classes: not pushed down
        like = where.path_glob.replace("*", "%").replace("?", "_")
        parts.append(f"path like {_quoted(like)}")
    return " and ".join(parts)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MilvusVectorStore:
    """A `VectorStore` over a Milvus collection (see the module docstring for how it stays in step)."""

    def __init__(self, documents: DocumentStore, spec: str):
        self.documents = documents
        self.target = milvus_target(spec, documents.dir)
        self.kind = self.target.spec
        self._client = None
        self._memory = None  # (generation, alone, FAISS index) searched instead of, or beside, Milvus

    @property
    def dir(self) -> Path:
        return self.documents.dir

    # -- connecting ---------------------------------------------------------------------------

    def connect(self):
        """The client, with the collection created and loaded; VectorStoreError if unreachable."""
        if self._client is not None:
            return self._client
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise InputError(
                f"the index at {self.dir} keeps its vectors in Milvus ({self.kind}); install it with "
                "`pip install 'xlsearch[milvus]'`"
            ) from None
        target = self.target
        if target.lite and lite_in_use(Path(target.uri)):
            raise VectorStoreError(
                f"{target.uri} is open in another process (a running `xlsearch serve`?) and Milvus Lite allows one at a "
                "time — stop it and run again, or use a Milvus server (--vector-store milvus://HOST:PORT)"
            )
        try:
            client = MilvusClient(target.uri, timeout=10, **({"grpc_options": LITE_GRPC_OPTIONS} if target.lite else {}))
            if not client.has_collection(target.collection):
                self._create_collection(client)
                with contextlib.suppress(OSError):  # a marker for a collection that is gone says nothing
                    (self.dir / MARKER).unlink(missing_ok=True)
            client.load_collection(target.collection)
        except Exception as exc:  # pymilvus raises MilvusException and its kin, gRPC errors, OSError
            raise VectorStoreError(
                f"cannot reach Milvus at {target.uri} ({_reason(exc)}) — start the server, or check --vector-store"
            ) from None
        self._client = client
        return client

    def _create_collection(self, client) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.documents.dim)
        schema.add_field("lang", DataType.VARCHAR, max_length=16)
        schema.add_field("doc_id", DataType.INT64)
        schema.add_field("path", DataType.VARCHAR, max_length=65535)
        schema.add_field("file_type", DataType.VARCHAR, max_length=64)
        schema.add_field("mtime", DataType.DOUBLE)
        index_type, build, _ = MILVUS_INDEXES[self.documents.meta("index_type") or "flat"]
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=build)
        client.create_collection(self.target.collection, schema=schema, index_params=params)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the VectorStore protocol -------------------------------------------------------------

    def in_sync(self) -> bool:
        marker = self._marker()
        return marker.get("generation") == self.documents.generation

    def count(self) -> int:
        return self.documents.chunk_count()

    def search(self, queries: np.ndarray, k: int, where: VectorFilter | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine) per query: Milvus's answer merged with the chunks it does not
        have yet — or, when Milvus Lite is open in another process, the in-memory copy's alone."""
        queries = np.ascontiguousarray(queries, np.float32)
        with self.documents.snapshot():
            memory, alone = self._in_memory()
            if alone:
                return _as_lists(ff.search_index_many(memory, queries, k))
            found = self._milvus_search(queries, k, where)
            if memory is None or memory.ntotal == 0:
                return found
            extra = _as_lists(ff.search_index_many(memory, queries, k))
            return [sorted(a + b, key=lambda t: -t[1])[:k] for a, b in zip(found, extra)]

    def _milvus_search(self, queries: np.ndarray, k: int, where: VectorFilter | None) -> list[list[tuple[int, float]]]:
        client = self.connect()
        _, _, search = MILVUS_INDEXES[self.documents.meta("index_type") or "flat"]
        try:
            results = client.search(
                self.target.collection, data=queries.tolist(), limit=max(1, min(k, MILVUS_MAX_TOPK)),
                filter=milvus_expression(where), output_fields=["id"],
                search_params={"metric_type": "IP", "params": search},
            )
        except Exception as exc:
            raise VectorStoreError(f"Milvus at {self.target.uri} failed a search ({_reason(exc)})") from None
        return [[(int(hit["id"]), float(hit["distance"])) for hit in hits] for hits in results]

    def _in_memory(self):
        """(an in-memory FAISS index of what Milvus cannot answer for, or None; whether it stands
        alone). A reader repairs Milvus itself when no run holds the write lock; otherwise it
        keeps the chunks added since the marker in memory — or all of them, when Milvus Lite is
        open in another process. Built once per generation."""
        generation = self.documents.generation
        elsewhere = self.target.lite and self._client is None and lite_in_use(Path(self.target.uri))
        if not elsewhere and self._marker().get("generation") == generation:
            return None, False
        if self._memory is not None and self._memory[:2] == (generation, elsewhere):
            return self._memory[2], elsewhere
        if not elsewhere and not self.documents.writable and not write_lock_held(self.dir):
            try:
                self.sync()
                return None, False
            except OSError as exc:  # the marker cannot be written here (a read-only index folder)
                log.debug("cannot repair %s: %s", self.kind, exc)
        if elsewhere:
            log.warning("%s is open in another process; searching this index's vectors from SQLite in memory", self.target.uri)
            ids, vecs = self.documents.vectors()
        else:
            ids = self.documents.chunk_ids()
            ids, vecs = self.documents.vectors(ids[ids > self._marker().get("max_id", 0)].tolist())
        self._memory = (generation, elsewhere, ff.build_index("flat", ids, vecs, self.documents.dim))
        return self._memory[2], elsewhere

    def sync(self) -> None:
        """Make the collection match SQLite's current generation: delete, upsert, flush, marker.

        A writer whose Milvus Lite folder is open in another process (a server) leaves it to that
        process, which repairs it at its next search. A reader repairing deletes only ids up to
        its snapshot's newest: a run that started meanwhile may be adding newer ones."""
        if self.documents.writable and self.target.lite and lite_in_use(Path(self.target.uri)):
            log.warning("%s is open in another process; that process brings the new vectors in at its next search", self.target.uri)
            return
        client = self.connect()
        collection = self.target.collection
        with self.documents.snapshot():
            generation = self.documents.generation
            want = self.documents.chunk_ids()
            have = self._milvus_ids(client)
            if not self.documents.writable and len(want):
                have = have[have <= want.max()]
            removed, added = np.setdiff1d(have, want), np.setdiff1d(want, have)
            try:
                for start in range(0, len(removed), 10000):
                    client.delete(collection, ids=removed[start : start + 10000].tolist())
                for start in range(0, len(added), _UPSERT_ROWS):
                    client.upsert(collection, self.documents.vector_rows(added[start : start + _UPSERT_ROWS].tolist()))
                client.flush(collection)
            except Exception as exc:
                raise VectorStoreError(f"Milvus at {self.target.uri} failed a write ({_reason(exc)}); run `xlsearch index` again") from None
        if len(removed) or len(added):
            log.info("Milvus %s: %d vectors added, %d deleted", self.kind, len(added), len(removed))
        self._write_marker({"collection": self.kind, "generation": generation, "max_id": int(want.max()) if len(want) else 0})
        self._memory = None

    def _milvus_ids(self, client) -> np.ndarray:
        # Milvus Lite has no MVCC timestamp to give; pymilvus warns of it on every scan
        logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
        try:
            iterator = client.query_iterator(self.target.collection, batch_size=10000, filter="", output_fields=["id"])
            ids = []
            while batch := iterator.next():
                ids.extend(row["id"] for row in batch)
            iterator.close()
        except Exception as exc:
            raise VectorStoreError(f"Milvus at {self.target.uri} failed a read ({_reason(exc)})") from None
        return np.asarray(sorted(ids), np.int64)

    def reset(self) -> None:
        """Drop the collection and the marker (the index type changed, or the store was switched)."""
        if self.target.lite or self._client is not None:
            try:
                self.connect().drop_collection(self.target.collection)
            except VectorStoreError:
                pass
        self.close()
        (self.dir / MARKER).unlink(missing_ok=True)
        self._memory = None

    # -- the marker ---------------------------------------------------------------------------

    def _marker(self) -> dict:
        try:
            marker = json.loads((self.dir / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return marker if marker.get("collection") == self.kind else {}

    def _write_marker(self, marker: dict) -> None:
        tmp = self.dir / (MARKER + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(marker, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / MARKER)


def lite_in_use(folder: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on `folder` (this one's own server does not count)."""
    return str(folder) not in _open_here() and flock_held(folder / "LOCK")


def _open_here() -> set[str]:
    """Milvus Lite folders this process already serves (pymilvus reuses one server per folder)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return set()
    return set(getattr(server_manager_instance, "_servers", {}))


def _as_lists(found) -> list[list[tuple[int, float]]]:
    return [[(int(i), float(s)) for i, s in zip(ids, scores)] for scores, ids in found]


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0][:200]
