"""Encoder details that the pipeline tests do not pin down."""

import numpy as np
import pytest

from models.torch_encoder import TorchEncoder


def test_query_vectors_come_from_a_bounded_lru_cache(tiny_model_dir, monkeypatch):
    encoder = TorchEncoder(tiny_model_dir)
    monkeypatch.setattr(encoder, "QUERY_CACHE_SIZE", 2)
    calls = []
    real_encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts, kind="passage", *a, **k: calls.append(list(texts)) or real_encode(texts, kind, *a, **k))

    first = encoder.encode_query("quick fox")
    assert np.allclose(first, real_encode(["quick fox"], "query")[0]), "the query prompt is used"
    calls.clear()
    assert encoder.encode_query("quick fox") is first and calls == [], "a repeated query is not re-encoded"
    with pytest.raises(ValueError):
        first[0] = 1.0  # cached vectors are read-only: a caller cannot corrupt the cache
    encoder.encode_query("lazy dog")
    encoder.encode_query("quick fox")  # refreshes "quick fox"; "lazy dog" is now the oldest
    encoder.encode_query("搜索引擎")  # evicts "lazy dog"
    calls.clear()
    encoder.encode_query("quick fox")
    assert calls == []
    encoder.encode_query("lazy dog")
    assert calls == [["lazy dog"]]


def test_a_batch_is_cut_where_its_rows_would_be_mostly_padding(tiny_encoder):
    extra = len(tiny_encoder._prefix_ids) + len(tiny_encoder._suffix_ids)
    assert extra == 2, "the tiny model's [CLS] and [SEP]"
    lengths = [40, 1, 3, 4, 5, 6, 7, 8, 9]
    windows = [(i, [5] * n) for i, n in enumerate(lengths)]
    batches = [[len(c) for _, c in b] for b in tiny_encoder._batches(windows, batch_size=4)]
    # 5 + 2 > 2 * (1 + 2) starts a new batch; 9 finds its batch full; 40 + 2 > 2 * (9 + 2)
    assert batches == [[1, 3, 4], [5, 6, 7, 8], [9], [40]]

    texts = ["a", "the quick brown fox jumps over the lazy dog " * 3, "狐狸", "search engines rank documents by relevance"]
    one_by_one = np.stack([tiny_encoder.encode([t], "query")[0] for t in texts])
    assert np.allclose(tiny_encoder.encode(texts, "query", batch_size=8), one_by_one, atol=1e-5), "cutting changes no vector"


def test_texts_are_tokenized_in_slices_and_give_the_same_vectors(tiny_encoder, monkeypatch):
    """A 50 MB JSONL file is one `encode` of 74k texts: its tokens must not all be Python objects at once."""
    texts = [f"document {i} " + "about foxes and dogs " * (i % 7) for i in range(11)] + ["", "狐狸和狗" * 200]
    one_by_one = np.stack([tiny_encoder.encode([t], "passage")[0] for t in texts])
    calls = []
    real_ids = tiny_encoder._ids
    monkeypatch.setattr(tiny_encoder, "_ids", lambda chunk: calls.append(len(chunk)) or real_ids(chunk))
    monkeypatch.setattr(tiny_encoder, "TOKENIZE_TEXTS", 5)
    sliced = tiny_encoder.encode(texts, "passage", batch_size=4)
    assert calls == [5, 5, 3]
    assert np.allclose(sliced, one_by_one, atol=1e-5)


def test_a_bulk_encode_hands_freed_memory_back_every_so_many_windows(tiny_encoder, monkeypatch):
    """glibc keeps what a bf16 encode frees batch after batch (RSS doubled over 2,000 texts): a
    long `encode` trims it as it goes; a short one (a query, a hit's sentences) never pays for it."""
    import models.encoder

    trims = []
    monkeypatch.setattr(models.encoder, "release_freed_memory", lambda: trims.append(1))
    monkeypatch.setattr(tiny_encoder, "TRIM_EVERY_WINDOWS", 8)
    texts = [f"text number {i} about foxes" for i in range(20)]
    tiny_encoder.encode(texts, "passage", batch_size=4)  # five batches of four: after the 2nd and the 4th
    assert len(trims) == 2
    trims.clear()
    tiny_encoder.encode(texts[:7], "query", batch_size=4)
    assert trims == []
