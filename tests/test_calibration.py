import numpy as np
import pytest

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


def test_the_calibration_sample_depends_on_content_not_on_history(tmp_path, tiny_model_dir):
    """A file removed and indexed again gets new chunk ids; the sample, and so the ranking, stay."""
    import numpy as np

    import xlsearch
    from core.config import IndexConfig

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"{i}.md").write_text(f"note {i}: the quick brown fox number {i} jumps over dog {i * 7}", encoding="utf-8")
    (docs / "zh.md").write_text("快速的棕色狐狸跳过了懒狗。", encoding="utf-8")
    with xlsearch.Index(tmp_path / "idx", tiny_model_dir, create=True) as index:
        index.add([docs])
        before = index.store.documents.vector_sample(8)
        hits = index.search("brown fox", k=5)
        kept = {p: p.read_text(encoding="utf-8") for p in docs.glob("[0-9]*.md")}
        for path in kept:
            path.unlink()
        index.add([docs], IndexConfig(prune=True))
        for path, text in sorted(kept.items(), reverse=True):  # back in another order, under new ids
            path.write_text(text, encoding="utf-8")
            index.add([path])
        after = index.store.documents.vector_sample(8)
        assert before.keys() == after.keys()
        assert all(np.allclose(before[lang], after[lang], atol=1e-5) for lang in before)  # the same texts, re-embedded
        again = index.search("brown fox", k=5)
        assert [h.path for h in again] == [h.path for h in hits]
        assert [h.score for h in again] == pytest.approx([h.score for h in hits], abs=1e-3)
