"""Trainee comparison: speed-up, AUC gains, best masked variant, the verdict, McNemar on the validation images."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from facetransfer.analysis.trainee import across_seeds, compare_predictions, summary_table, verdict_across_seeds


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


def test_a_baseline_is_required():
    with pytest.raises(ValueError, match="'plain' baseline"):
        summary_table({"mean": _summary(0.1, 0.1, None)})


def _by_seed(final: dict[str, list[float]], auc: dict[str, list[float]],
             steps: dict[str, list]) -> dict[int, pd.DataFrame]:
    seeds = range(len(final["plain"]))
    return {2022 + i: summary_table({name: _summary(final[name][i], auc[name][i], steps[name][i]) for name in final})
            for i in seeds}


FINAL = {"plain": [0.30, 0.34, 0.28, 0.31], "mean": [0.35, 0.36, 0.30, 0.38], "negative": [0.29, 0.36, 0.25, 0.30]}
AUC = {"plain": [0.20, 0.22, 0.19, 0.21], "mean": [0.25, 0.27, 0.22, 0.27], "negative": [0.21, 0.20, 0.18, 0.22]}
STEPS = {"plain": [400, 300, None, 500], "mean": [200, 200, 300, 100], "negative": [None, None, None, None]}


def test_across_seeds_pairs_each_variant_with_plain_seed_by_seed_as_scipy_does():
    table = across_seeds(_by_seed(FINAL, AUC, STEPS))
    for name in ("mean", "negative"):
        cells = table[name]["vs_plain"]
        raw = []
        for key, values in (("final_f1", FINAL), ("auc", AUC)):
            gain = np.subtract(values[name], values["plain"])
            reference = stats.ttest_rel(values[name], values["plain"])
            interval = reference.confidence_interval(0.95)
            assert cells[key]["mean_diff"] == pytest.approx(gain.mean())
            assert cells[key]["pvalue"] == pytest.approx(reference.pvalue)
            assert (cells[key]["ci_low"], cells[key]["ci_high"]) == pytest.approx((interval.low, interval.high))
            raw.append(reference.pvalue)
        # Holm over the variant's own two cells (the study's family rule), not over every variant
        expected = multipletests(raw, method="holm")[1]
        assert [cells["final_f1"]["pvalue_holm"], cells["auc"]["pvalue_holm"]] == pytest.approx(expected)
    assert table["mean"]["auc"]["mean"] == pytest.approx(np.mean(AUC["mean"]))
    assert table["mean"]["auc"]["sd"] == pytest.approx(np.std(AUC["mean"], ddof=1))
    # steps to the target: over the seeds that reached it, and how many did
    assert table["plain"]["steps_to_target"] == pytest.approx({"mean": 400.0, "sd": 100.0, "n": 3})
    assert table["negative"]["steps_to_target"] == {"mean": None, "sd": None, "n": 0}
    assert "vs_plain" not in table["plain"] and table["plain"]["n_seeds"] == 4


def test_the_verdict_takes_the_best_mean_auc_and_its_test_over_seeds():
    table = across_seeds(_by_seed(FINAL, AUC, STEPS))
    result = verdict_across_seeds(table)
    assert result["best_masked"] == "mean" and result["auc_gain"] == pytest.approx(0.0475)
    assert result["auc_gain_pvalue_holm"] == table["mean"]["vs_plain"]["auc"]["pvalue_holm"] < 0.05
    assert result["masking_sped_learning"] is True
    worse = {k: v if k != "mean" else [x - 0.1 for x in v] for k, v in AUC.items()}
    assert verdict_across_seeds(across_seeds(_by_seed(FINAL, worse, STEPS)))["masking_sped_learning"] is False
    one_seed = tuple({k: v[:1] for k, v in table.items()} for table in (FINAL, AUC, STEPS))
    assert verdict_across_seeds(across_seeds(_by_seed(*one_seed)))["masking_sped_learning"] is None  # untestable
    with pytest.raises(ValueError, match="no masked variant"):
        verdict_across_seeds(across_seeds(_by_seed({"plain": [0.1]}, {"plain": [0.1]}, {"plain": [None]})))


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
