"""Index runs: incremental by content hash, replace on change, prune, skip with reasons."""

import pytest

from core.config import ChunkConfig, IndexConfig
from core.errors import InputError
from indexer.pipeline import run_index
from storage.store import Store


class CountingEncoder:
    """Wraps the tiny encoder and counts the texts it embeds."""

    def __init__(self, inner):
        self.inner = inner
        self.embedded = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, *args, **kwargs):
        self.embedded += len(texts)
        return self.inner.encode(texts, *args, **kwargs)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Layers\n\nthe quick brown fox jumps over the lazy dog.", encoding="utf-8")
    (root / "b.txt").write_text("快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    (root / "sub" / "c.html").write_text("<title>Search</title><p>search engines rank documents</p>", encoding="utf-8")
    (root / "ignored.docx").write_bytes(b"PK\x03\x04")
    (root / ".hidden.md").write_text("hidden", encoding="utf-8")
    return root


def index(paths, db, encoder, **kw):
    config = IndexConfig(chunk=ChunkConfig(max_tokens=64, overlap_tokens=8), **kw)
    with Store.open_for_writing(db, encoder.identity) as store:
        return run_index(paths, store, encoder, config, progress=False)


def test_incremental_reindex(corpus, tmp_path, tiny_encoder):
    db = tmp_path / "idx"
    enc = CountingEncoder(tiny_encoder)
    first = index([corpus], db, enc)
    assert (first.added, first.updated, first.unchanged, first.skipped) == (3, 0, 0, [])
    assert first.chunks == enc.embedded > 0

    enc.embedded = 0
    again = index([corpus], db, enc)
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 3, 0)
    assert enc.embedded == 0, "unchanged files must not be embedded again"

    (corpus / "b.txt").write_text("搜索引擎按照与查询的相关性对文档进行排序。", encoding="utf-8")
    changed = index([corpus], db, enc)
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 2)
    with Store.open(db) as store:
        texts = [r[0] for r in store.documents.db.execute("select text from documents")]
        assert "搜索引擎按照与查询的相关性对文档进行排序。" in texts and "快速的棕色狐狸跳过了懒狗。" not in texts

    (corpus / "a.md").unlink()
    kept = index([corpus], db, enc)
    assert kept.removed == 0
    with Store.open(db) as store:
        assert store.info()["files"] == 3, "without --prune a deleted file stays indexed"
    pruned = index([corpus / "sub"], db, enc, prune=True)
    assert pruned.removed == 0, "--prune only looks under the paths given"
    pruned = index([corpus], db, enc, prune=True)
    assert pruned.removed == 1
    with Store.open(db) as store:
        info = store.info()
        assert info["files"] == 2 and store.vectors.index().ntotal == info["chunks"]


def test_bad_files_are_skipped_with_reasons_and_good_ones_indexed(tmp_path, tiny_encoder):
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "good.txt").write_text("the quick brown fox", encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.md").write_bytes(bytes(range(256)) * 4)
    (root / "rows.jsonl").write_text('{"text": "ok"}\n{oops}\n', encoding="utf-8")
    (root / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    summary = index([root], tmp_path / "idx", tiny_encoder)
    reasons = {p.rsplit("/", 1)[1]: r for p, r in summary.skipped}
    assert summary.added == 1
    assert reasons == {
        "binary.md": "binary file (not text)",
        "empty.txt": "empty file",
        "rows.jsonl": "line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        "table.csv": "line 1: no column 'text' (columns: a, b) — pass --text-field NAME",
    }


def test_a_file_that_turns_bad_keeps_its_previous_version(tmp_path, tiny_encoder):
    root = tmp_path / "d"
    root.mkdir()
    (root / "rows.jsonl").write_text('{"text": "the quick brown fox"}\n', encoding="utf-8")
    index([root], tmp_path / "idx", tiny_encoder)
    (root / "rows.jsonl").write_text('{"text": "the quick brown fox"}\nnot json\n', encoding="utf-8")
    summary = index([root], tmp_path / "idx", tiny_encoder)
    assert summary.skipped and summary.updated == 0
    with Store.open(tmp_path / "idx") as store:
        assert store.info()["documents"] == 1


def test_missing_path_is_fatal_before_anything_is_written(tmp_path, tiny_encoder):
    with pytest.raises(InputError, match="no-such-folder: no such file or folder"):
        index([tmp_path / "no-such-folder"], tmp_path / "idx", tiny_encoder)


def test_symlink_loop_does_not_hang(tmp_path, tiny_encoder):
    root = tmp_path / "loop"
    root.mkdir()
    (root / "a.txt").write_text("the lazy dog", encoding="utf-8")
    (root / "self").symlink_to(root, target_is_directory=True)
    summary = index([root], tmp_path / "idx", tiny_encoder)
    assert summary.added == 1


def test_progress_counts_chunks_and_estimates_the_total_from_bytes(tmp_path):
    from indexer.pipeline import ChunkProgress
    from indexer.summary import IndexSummary

    sizes = {tmp_path / name: size for name, size in (("a", 1000), ("b", 1000), ("c", 2000), ("d", 500))}
    progress = ChunkProgress(sizes, IndexSummary(), enabled=False)
    assert progress.estimate() is None  # nothing guessed before a file is parsed
    progress.passed_over(tmp_path / "d")  # unchanged: no chunks to come from it
    progress.parsed(tmp_path / "a", 10)
    assert progress.estimate() == 10 + 30  # 3000 bytes left at 10 chunks per 1000
    progress.parsed(tmp_path / "b", 30)
    assert progress.estimate() == 40 + 40  # 2000 bytes left at 40 chunks per 2000
    progress.parsed(tmp_path / "c", 50)
    assert progress.estimate() == 90
    progress.close()


def test_the_bar_shows_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    import io

    from indexer.pipeline import ChunkProgress
    from indexer.summary import IndexSummary

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    shown = Terminal()
    monkeypatch.setattr("sys.stderr", shown)
    progress = ChunkProgress({tmp_path / "a": 100}, IndexSummary(found=1), enabled=True)
    progress.parsed(tmp_path / "a", 4)
    progress.embedded(4)
    progress.close()
    assert "embedding" in shown.getvalue() and "4/4" in shown.getvalue() and "1 files: 0 unchanged, 0 skipped" in shown.getvalue()
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: no bar
    assert ChunkProgress({}, IndexSummary(), enabled=True).bar.disable


def test_the_first_commit_batch_is_small_so_embedding_starts_early(tmp_path, tiny_encoder):
    """A large collection starts embedding after FIRST_COMMIT_CHUNKS chunks, not a full batch."""
    from indexer.pipeline import FIRST_COMMIT_CHUNKS

    root = tmp_path / "many"
    root.mkdir()
    for i in range(400):
        (root / f"{i:03}.txt").write_text(f"note {i}: the quick brown fox jumps over the lazy dog", encoding="utf-8")
    calls = []

    class Recording(CountingEncoder):
        def encode(self, texts, *args, **kwargs):
            calls.append(len(texts))
            return super().encode(texts, *args, **kwargs)

    summary = index([root], tmp_path / "idx", Recording(tiny_encoder), commit_every_chunks=1000)
    assert summary.chunks == 400
    assert calls == [FIRST_COMMIT_CHUNKS, 400 - FIRST_COMMIT_CHUNKS]


def test_a_long_document_gets_its_opening_as_a_head_chunk(tmp_path, tiny_encoder):
    from indexer.pipeline import parse_file

    body = " ".join(f"Sentence number {i} talks about layers and caches." for i in range(60))
    text = f"# Cache tuning\n\nHow to size the page cache for a database server.\n\n{body}"
    config = IndexConfig(chunk=ChunkConfig(max_tokens=64, overlap_tokens=8, head_tokens=24))
    [doc] = parse_file(tmp_path / "long.md", text.encode(), tiny_encoder, config)
    head, rest = doc.chunks[0], doc.chunks[1:]
    assert len(rest) > 2
    assert head.start == 0 and head.n_tokens <= 24 and head.end < rest[0].end
    assert doc.text[head.start : head.end].startswith("Cache tuning")
    assert "cache" in head.terms.split()

    no_head = IndexConfig(chunk=ChunkConfig(max_tokens=64, overlap_tokens=8, head_tokens=0))
    [plain] = parse_file(tmp_path / "long.md", text.encode(), tiny_encoder, no_head)
    assert [(c.start, c.end) for c in plain.chunks] == [(c.start, c.end) for c in rest]
    # a document that is one chunk already gets no head: it would repeat that chunk
    [short] = parse_file(tmp_path / "short.md", b"# Cache\n\nOne line.", tiny_encoder, config)
    assert len(short.chunks) == 1


def test_a_head_chunk_carries_a_title_its_text_lacks(tmp_path, tiny_encoder):
    from indexer.pipeline import parse_file

    body = " ".join(f"<p>Paragraph {i} explains how rows are merged.</p>" for i in range(60))
    html = f"<html><head><title>Merging Rows</title></head><body><p>Opening words.</p>{body}</body></html>"
    config = IndexConfig(chunk=ChunkConfig(max_tokens=64, overlap_tokens=8, head_tokens=24))
    [doc] = parse_file(tmp_path / "merge.html", html.encode(), tiny_encoder, config)
    assert "Merging" not in doc.text[doc.chunks[0].start : doc.chunks[0].end]
    assert {"merging", "rows", "opening"} <= set(doc.chunks[0].terms.split())
