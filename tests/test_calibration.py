import numpy as np

from search.calibration import LanguageCalibration, sample_by_language


def test_calibration_removes_a_per_language_offset():
    rng = np.random.default_rng(0)
    dim = 32
    base = rng.normal(size=(400, dim))
    en_dir = rng.normal(size=dim)
    en = base[:200] + 2 * en_dir  # English text shares an offset with English queries
    zh = base[200:]
    query = en_dir / np.linalg.norm(en_dir) + 0.1 * rng.normal(size=dim)
    vectors = np.vstack([en, zh]).astype(np.float32)
    langs = ["en"] * 200 + ["zh"] * 200
    raw = vectors @ query
    assert raw[:200].mean() > raw[200:].mean() + 1.0, "raw scores favour English"
    calibrate = LanguageCalibration(sample_by_language(vectors, langs, per_language=100))
    z = calibrate(query, raw, langs)
    assert abs(z[:200].mean() - z[200:].mean()) < 0.3, "calibrated scores are comparable"
    # the order within a language is unchanged
    assert (np.argsort(z[200:]) == np.argsort(raw[200:])).all()


def test_small_languages_use_the_pooled_background():
    vectors = np.eye(40, dtype=np.float32)
    langs = ["en"] * 30 + ["other"] * 10
    calibrate = LanguageCalibration(sample_by_language(vectors, langs))
    assert set(calibrate.samples) == {"en"}
    out = calibrate(vectors[0], np.array([1.0, 0.0]), ["other", "en"])
    assert np.isfinite(out).all()


def test_empty_collection_passes_scores_through():
    out = LanguageCalibration({})(np.ones(4), np.array([0.5]), ["en"])
    assert out.tolist() == [0.5]
