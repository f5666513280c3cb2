"""Evaluation maths on hand-made vectors with known answers."""

import numpy as np
import pytest

from training.evaluate import (
    PairVectors,
    bitext_accuracy_from_vectors,
    evaluate_pairs,
    first_sentence_split,
    gold_ranks,
    language_bias,
    retrieval_metrics,
)


def normed(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_gold_ranks_and_metrics():
    sims = np.array([[0.9, 0.1, 0.2], [0.5, 0.4, 0.6], [0.3, 0.3, 0.1]])
    ranks = gold_ranks(sims, np.array([0, 1, 2]))
    assert ranks.tolist() == [0, 2, 2]  # a tie with the gold counts against it
    m = retrieval_metrics(ranks)
    assert m["r1"] == pytest.approx(1 / 3) and m["r5"] == 1.0
    assert m["mrr10"] == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)


def test_bitext_accuracy_counts_each_direction():
    en = np.eye(3)
    zh = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0.1]], float)  # en1↔zh2 and en2↔zh1 are swapped
    r = bitext_accuracy_from_vectors(en, normed(zh))
    assert r.en_to_zh == pytest.approx(1 / 3) and r.zh_to_en == pytest.approx(1 / 3)


def biased_pairs(n=50, dim=16, offset=1.0, seed=0):
    rng = np.random.default_rng(seed)
    meaning = rng.normal(size=(n, dim))
    en_shift, zh_shift = offset * rng.normal(size=dim), offset * rng.normal(size=dim)
    en = normed(meaning + en_shift)
    zh = normed(meaning + 0.3 * rng.normal(size=(n, dim)) + zh_shift)
    return en, zh


def test_language_bias_sees_what_bitext_accuracy_does_not():
    en, zh = biased_pairs()
    bitext = bitext_accuracy_from_vectors(en, zh)
    bias = language_bias(en, en, zh)
    assert (bitext.en_to_zh + bitext.zh_to_en) / 2 > 0.85, "within the other language alone, translations are nearest"
    assert bias["top1"] < 0.5, "but in a mixed pool same-language text wins"
    centered = language_bias(normed(en - en.mean(0)), normed(en - en.mean(0)), normed(zh - zh.mean(0)))
    assert centered["top1"] > 0.95, "removing each language's mean restores the translations"
    balanced = language_bias(en, en, zh, balance=True)
    assert balanced["top1"] > 0.8, "so does calibrating scores per language at ranking time"


def test_language_bias_ignores_the_query_itself():
    en = np.eye(4)
    bias = language_bias(en, en, en.copy())  # the translation is identical to the query
    assert bias == {"top1": 1.0, "top10": 1.0}


def test_evaluate_pairs_report():
    en, zh = biased_pairs(offset=0.0)
    report = evaluate_pairs("toy", PairVectors(en, en, zh, zh))
    assert report.pairs == 50 and report.bitext_en_zh > 0.9 and report.bias_top10_en > 0.9
    assert set(report.to_dict()) >= {"bitext_en_zh", "mrr10_zh_en", "bias_top1_zh"}


def test_first_sentence_split():
    items = first_sentence_split([
        "Layers stack images. Each layer can be hidden. Masks hide parts.",
        "Only one sentence here.",
        "图层可以叠加。每个图层都可以隐藏，蒙版可以隐藏图层的一部分。",
    ])
    assert items == [
        ("Layers stack images.", "Each layer can be hidden. Masks hide parts."),
        ("图层可以叠加。", "每个图层都可以隐藏，蒙版可以隐藏图层的一部分。"),
    ]
