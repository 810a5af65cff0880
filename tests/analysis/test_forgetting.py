"""Forgetting analysis: recall table, McNemar per class with Holm, paired intervals, the trade-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from facetransfer.analysis.forgetting import (
    class_trade_offs,
    mcnemar_by_class,
    most_forgotten,
    paired_difference_ci,
    recall_table,
    trade_off,
)

CLASSES = ("a", "b")


def _frame(labels, predicted):
    return pd.DataFrame({"row": np.arange(len(labels)), "label": labels, "predicted": predicted})


@pytest.fixture
def predictions():
    labels = np.array([0] * 10 + [1] * 10)
    reference = labels.copy()  # always right
    other = labels.copy()
    other[:4] = 1  # 4 of class a wrong
    return {5: _frame(labels, reference), 0: _frame(labels, other)}


def test_recall_table(predictions):
    table = recall_table(predictions, CLASSES)
    assert list(table.index) == ["freeze0", "freeze5"]
    assert table.loc["freeze0"].tolist() == pytest.approx([0.6, 1.0, 0.8])
    assert table.loc["freeze5", "macro"] == 1.0


def test_mcnemar_by_class(predictions):
    result = mcnemar_by_class(predictions, CLASSES, reference=5, confidence=0.95)
    cell = result["freeze0"]["a"]
    assert cell["method"] == "exact"
    assert cell["pvalue"] == pytest.approx(min(1.0, 2 * binom.cdf(0, 4, 0.5)))  # b = 4, c = 0
    assert cell["recall_difference"] == pytest.approx(0.4)
    assert cell["ci_low"] < 0.4 < cell["ci_high"]
    assert result["freeze0"]["b"]["pvalue"] == 1.0  # no discordant pairs
    # Holm over the family of 2 comparisons: the smaller p doubled.
    assert cell["pvalue_holm"] == pytest.approx(min(1.0, 2 * cell["pvalue"]))


def test_paired_interval_matches_the_formula():
    rng = np.random.default_rng(0)
    a, b = rng.random(200) < 0.7, rng.random(200) < 0.6
    d, low, high = paired_difference_ci(a, b, 0.95)
    n, n10, n01 = 200, np.sum(a & ~b), np.sum(~a & b)
    se = np.sqrt(((n10 + n01) / n - ((n10 - n01) / n) ** 2) / n)
    assert d == pytest.approx(a.mean() - b.mean())
    assert (low, high) == pytest.approx((d - 1.959963984540054 * se, d + 1.959963984540054 * se))


def test_misaligned_predictions_are_rejected(predictions):
    predictions[0] = predictions[0].assign(row=predictions[0]["row"] + 100)
    with pytest.raises(ValueError, match="different images"):
        mcnemar_by_class(predictions, CLASSES, reference=5, confidence=0.95)


def test_trade_off_front_and_balanced_choice():
    pain = {0: 0.9, 1: 0.8, 2: 0.95, 5: 0.7}
    emotion = {0: 0.6, 1: 0.55, 2: 0.65, 5: 0.8}
    result = trade_off(pain, emotion)
    assert result["pareto_front"] == ["freeze2", "freeze5"]  # 0 and 1 are dominated by 2
    assert result["balanced"] == "freeze2"  # harmonic mean 0.77 vs 0.747


def test_most_forgotten_classes_rank_by_mean_forgetting_over_the_models():
    forgetting = pd.DataFrame({"happy": [0.0, 0.1], "sad": [0.3, -0.1], "fear": [0.2, 0.2], "macro": [0.9, 0.9]},
                              index=["freeze0", "freeze1"])
    assert most_forgotten(forgetting, 2) == ["fear", "sad"]  # means 0.2, 0.1, 0.05; macro is not a class
    assert most_forgotten(forgetting, 0) == []


def test_class_trade_offs_pair_pain_recall_with_one_emotions_recall():
    recall = pd.DataFrame({"sad": [0.2, 0.6, 0.5]}, index=["freeze0", "freeze1", "freeze5"])
    pain = {0: 0.9, 1: 0.8, 5: 0.7}
    panel = class_trade_offs(pain, recall, ["sad"])["sad"]
    assert panel["points"]["freeze1"] == {"pain_macro_recall": 0.8, "class_recall": 0.6}
    assert panel["pareto_front"] == ["freeze0", "freeze1"]  # freeze5 is beaten by freeze1 on both axes


def test_source_vs_reference_says_whether_head_retraining_beat_the_source(predictions):
    from facetransfer.analysis.forgetting import source_vs_reference

    source, reference = predictions[0], predictions[5]  # the "reference" is right on 4 more images
    out = source_vs_reference(source, reference, 2, 0.95)
    assert out["source_macro_recall"] == pytest.approx(0.8) and out["reference_macro_recall"] == 1.0
    assert out["accuracy_difference"] == pytest.approx(4 / 20) and out["ci_low"] < 0.2 < out["ci_high"]
    assert out["pvalue"] == pytest.approx(2 * binom.cdf(0, 4, 0.5)) and out["method"] == "exact"
