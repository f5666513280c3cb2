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
