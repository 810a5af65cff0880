"""compare_probes: which scores feed which test, and the intervals agree with the tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from facetransfer.concepts import compare_probes


def _scores(seed, shift=0.0, repeats=40):
    rng = np.random.default_rng(seed)
    base = 0.7 + 0.05 * rng.standard_normal((repeats, 2))
    return base + 0.02 * rng.standard_normal((repeats, 2)) + shift, base


def test_plain_test_is_scipy_on_repeat_means():
    a, b = _scores(0, shift=0.01)
    result = compare_probes(a, b, n_train=50, n_test=50)
    expected = stats.ttest_rel(a.mean(1), b.mean(1))
    assert result["plain"]["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert result["plain"]["pvalue"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result["plain"]["df"] == 39


def test_corrected_test_uses_all_fold_scores_with_the_nadeau_bengio_variance():
    a, b = _scores(1, shift=0.01)
    result = compare_probes(a, b, n_train=60, n_test=40)
    d = (a - b).ravel()  # 80 fold-level differences
    t = d.mean() / np.sqrt((1 / 80 + 40 / 60) * d.var(ddof=1))
    assert result["corrected"]["statistic"] == pytest.approx(t, rel=1e-12)
    assert result["corrected"]["pvalue"] == pytest.approx(2 * stats.t.sf(abs(t), 79), rel=1e-9)
    lo, hi = result["ci_diff_corrected"]
    half = stats.t.ppf(0.975, 79) * np.sqrt((1 / 80 + 40 / 60) * d.var(ddof=1))
    assert (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-12)


def test_five_by_two_uses_the_first_five_repeats():
    a, b = _scores(2, shift=0.01)
    whole = compare_probes(a, b, 50, 50)["five_by_two"]
    changed_tail = a.copy()
    changed_tail[5:] += 0.3
    assert compare_probes(changed_tail, b, 50, 50)["five_by_two"] == whole
    assert whole["df"] == 5


def test_corrected_interval_excludes_zero_exactly_when_the_test_rejects():
    for seed in range(30):
        a, b = _scores(seed, shift=0.004 * (seed % 6))
        result = compare_probes(a, b, 50, 50, confidence=0.95)
        lo, hi = result["ci_diff_corrected"]
        assert (lo > 0 or hi < 0) == (result["corrected"]["pvalue"] < 0.05)


def test_difference_sign_means_reference_better():
    a, b = _scores(3, shift=0.05)
    result = compare_probes(a, b, 50, 50)
    assert result["mean_diff"] == pytest.approx(0.05, abs=0.01)
    assert result["mean_f1_a"] > result["mean_f1_b"]
    assert result["ci_f1_a"][0] < result["mean_f1_a"] < result["ci_f1_a"][1]


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="repeats >= 5"):
        compare_probes(np.zeros((4, 2)), np.zeros((4, 2)), 10, 10)


def test_f1_intervals_stay_inside_zero_one_for_a_rare_au():
    rng = np.random.default_rng(3)
    rare = np.clip(0.02 + 0.05 * rng.standard_normal((40, 2)), 0.0, 1.0)  # F1 near 0: the raw interval dips below
    result = compare_probes(rare, rare[::-1], n_train=50, n_test=50)
    for key in ("ci_f1_a", "ci_f1_b"):
        low, high = result[key]
        assert 0.0 <= low < result[key.replace("ci_f1", "mean_f1")] < high <= 1.0
