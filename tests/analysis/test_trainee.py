"""Trainee comparison: speed-up, AUC gains, best masked variant, the verdict, McNemar on the validation images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facetransfer.analysis.trainee import best_masked, compare_predictions, summary_table, verdict


def _summary(final, auc, steps):
    return {"final_f1": final, "best_f1": final, "auc": auc, "steps_to_target": steps}


SUMMARIES = {"plain": _summary(0.30, 0.15, 400), "mean": _summary(0.10, 0.05, None),
             "mean-then-plain": _summary(0.40, 0.20, 100), "negative": _summary(0.32, 0.16, 800)}


def test_summary_table_differences_and_speedups_by_hand():
    table = summary_table(SUMMARIES)
    assert table.loc["mean-then-plain", "speedup"] == pytest.approx(4.0)  # 400 / 100 steps
    assert table.loc["negative", "speedup"] == pytest.approx(0.5)
    assert math.isnan(table.loc["mean", "speedup"]) and math.isnan(table.loc["mean", "steps_to_target"])
    assert table.loc["mean-then-plain", "auc_gain"] == pytest.approx(0.05)
    assert table.loc["mean", "final_f1_gain"] == pytest.approx(-0.20)
    assert table.loc["plain", "speedup"] == 1.0


def test_only_the_variant_reaching_the_target_is_infinitely_faster():
    table = summary_table({"plain": _summary(0.1, 0.05, None), "mean": _summary(0.5, 0.3, 50)})
    assert table.loc["mean", "speedup"] == math.inf
    result = verdict(table, "mean", 0.4)
    assert result["reached_target_sooner"] and result["masking_sped_learning"]


def test_best_masked_is_the_largest_auc_and_the_verdict_compares_with_plain():
    table = summary_table(SUMMARIES)
    assert best_masked(table) == "mean-then-plain"
    result = verdict(table, "mean-then-plain", 0.25)
    assert result == {"best_masked": "mean-then-plain", "target_f1": 0.25, "auc_baseline": 0.15, "auc_best": 0.20,
                      "masking_sped_learning": True, "reached_target_sooner": True}
    slower = verdict(table, "negative", 0.25)
    assert slower["masking_sped_learning"] and not slower["reached_target_sooner"]  # larger AUC, reached later


def test_a_baseline_is_required_and_a_masked_variant_too():
    with pytest.raises(ValueError, match="'plain' baseline"):
        summary_table({"mean": _summary(0.1, 0.1, None)})
    with pytest.raises(ValueError, match="no masked variant"):
        best_masked(summary_table({"plain": _summary(0.1, 0.1, None)}))


def test_compare_predictions_counts_discordant_pairs():
    actual = np.zeros(30, dtype=int)
    baseline = np.zeros(30, dtype=int)
    baseline[:10] = 1  # baseline wrong on 10 images
    other = np.zeros(30, dtype=int)
    other[:2] = 1  # other wrong on 2 of them: 8 discordant pairs, all for `other`
    result = compare_predictions(actual, baseline, other)
    assert result["method"] == "exact"
    assert result["pvalue"] == pytest.approx(2 * 0.5 ** 8)  # two-sided exact binomial, 8 of 8
    assert result["accuracy_baseline"] == pytest.approx(20 / 30) and result["accuracy_other"] == pytest.approx(28 / 30)
