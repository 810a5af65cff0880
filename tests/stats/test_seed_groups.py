"""seed_groups_difference: two groups of independently trained models, the seed as the unit (controls' recall)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from facetransfer.stats import seed_groups_difference


def textbook(a: list[float], b: list[float], confidence: float) -> tuple[float, float, float, float]:
    """Student's two-sample t with pooled variance, written out in float64: diff, low, high, two-sided p."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = a.size, b.size
    pooled = (((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()) / (na + nb - 2)
    se = math.sqrt(pooled * (1 / na + 1 / nb))
    diff = a.mean() - b.mean()
    df = na + nb - 2
    q = stats.t.ppf(0.5 + confidence / 2, df)
    return diff, diff - q * se, diff + q * se, 2 * stats.t.sf(abs(diff / se), df)


@pytest.mark.parametrize("a, b", [([0.70, 0.72, 0.65, 0.69, 0.74], [0.50, 0.40, 0.45]),
                                  ([0.71], [0.70, 0.72, 0.65, 0.69]),  # one model against four: the false-alarm use
                                  ([0.3, 0.5], [0.4, 0.45, 0.41])])
def test_matches_the_textbook_formula_and_statsmodels(a, b):
    cell = seed_groups_difference(a, b, 0.9)
    diff, low, high, p = textbook(a, b, 0.9)
    assert np.allclose([cell["mean_diff"], cell["ci_low"], cell["ci_high"], cell["pvalue"]], [diff, low, high, p],
                       rtol=1e-12, atol=1e-12)
    second = CompareMeans(DescrStatsW(np.array(a)), DescrStatsW(np.array(b)))
    assert np.isclose(cell["pvalue"], second.ttest_ind(usevar="pooled")[1], rtol=1e-10)
    assert np.allclose([cell["ci_low"], cell["ci_high"]], second.tconfint_diff(alpha=0.1, usevar="pooled"), rtol=1e-10)
    assert (cell["n_a"], cell["n_b"], cell["values_a"]) == (len(a), len(b), a)


def test_too_few_values_or_no_spread():
    assert seed_groups_difference([0.7], [0.6], 0.95)["pvalue"] is None
    empty = seed_groups_difference([], [0.6, 0.7, 0.8], 0.95)
    assert empty["pvalue"] is None and empty["mean_diff"] is None
    same = seed_groups_difference([0.5, 0.5], [0.5, 0.5, 0.5], 0.95)
    assert (same["pvalue"], same["ci_low"], same["ci_high"]) == (1.0, 0.0, 0.0)
    apart = seed_groups_difference([0.6, 0.6], [0.5, 0.5], 0.95)
    assert apart["pvalue"] == 0.0 and np.isclose(apart["ci_low"], 0.1)


@pytest.mark.parametrize("n_a, n_b", [(3, 5), (1, 4)])
def test_rejects_about_alpha_of_null_studies(n_a, n_b):
    """Both groups from one procedure (what a negative control standing in for a positive is): the rejection
    rate at alpha 0.05 lies in [0.01, 0.10], for the positive-vs-negatives and the one-vs-the-others shapes."""
    rng = np.random.default_rng(17)
    rejected = [seed_groups_difference(list(0.7 + 0.04 * rng.standard_normal(n_a)),
                                       list(0.7 + 0.04 * rng.standard_normal(n_b)), 0.95)["pvalue"] < 0.05
                for _ in range(2000)]
    assert 0.01 <= np.mean(rejected) <= 0.10
