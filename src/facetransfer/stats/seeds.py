"""Replication over training seeds: the seed, not the test image, is the unit of replication.

A model comparison repeated with several training seeds gives one difference per seed
(reference minus model, both trained with that seed). A new seed alone moves a class's recall
by as much as the effects studied, which a test over one seed's test images (McNemar) cannot
see: with seed-level variation it rejects 11-16 % of null studies at alpha 0.05, the paired
t-test over seeds 4-6 % (bench/seed_tests.py; tests/analysis/test_forgetting_seeds.py checks
the calibration). Signed-rank tests cannot reject with 5 seeds or fewer, and statsmodels'
variational-Bayes mixed GLM rejected 15-39 % of null studies, so neither is used.
"""

from __future__ import annotations

import numpy as np

from facetransfer.stats.correction import mean_ci
from facetransfer.stats.ttests import paired_ttest

SEED_TEST = "paired-t over seeds"


def seed_difference(reference: list[float], other: list[float], confidence: float) -> dict:
    """mean over seeds of reference - other, its Student-t interval, and the paired t-test over seeds.

    One seed: no spread to judge against, so no interval and no p-value (None). Identical differences
    in every seed: the interval is that value, the test follows `paired_ttest` (p 1 at 0, else 0).
    """
    d = np.subtract(reference, other, dtype=np.float64)  # (n_seeds,)
    cell = {"mean_diff": float(d.mean()), "ci_low": None, "ci_high": None, "pvalue": None,
            "n_seeds": int(d.size), "method": SEED_TEST, "sd": float(d.std(ddof=1)) if d.size > 1 else None,
            "per_seed": [float(v) for v in d]}
    if d.size < 2:
        return cell
    test = paired_ttest(reference, other)
    low, high = (cell["mean_diff"], cell["mean_diff"]) if np.var(d) == 0.0 else mean_ci(d, confidence)[1:]
    return cell | {"ci_low": float(low), "ci_high": float(high), "pvalue": test.pvalue, "statistic": test.statistic}


GROUPS_TEST = "Student t over seeds, pooled variance"


def seed_groups_difference(group_a: list[float], group_b: list[float], confidence: float) -> dict:
    """mean(group_a) - mean(group_b) of two sets of independently trained models (one value per seed),
    its Student-t interval and two-sided two-sample t-test with pooled variance.

    Pooled, not Welch: the check runs with one model in group_a too (a negative control standing in for a
    positive one, against the other negatives, to count false alarms), where only the pooled variance exists;
    under the null both groups come from the same procedure, so their variances are equal. Fewer than three
    values in all: no spread to judge against, so no interval and no p-value (None; an empty group has no
    difference either). No spread within either
    group: the interval is the difference, p is 1 at difference 0, else 0 (as `paired_ttest`).
    """
    from scipy import stats

    a, b = np.asarray(group_a, dtype=np.float64), np.asarray(group_b, dtype=np.float64)
    diff = float(a.mean() - b.mean()) if a.size and b.size else None  # None, not NaN: JSON has no NaN
    cell = {"mean_diff": diff, "ci_low": None, "ci_high": None, "pvalue": None, "n_a": int(a.size),
            "n_b": int(b.size), "method": GROUPS_TEST, "values_a": a.tolist(), "values_b": b.tolist()}
    if a.size == 0 or b.size == 0 or a.size + b.size < 3:
        return cell
    if np.var(a) == 0.0 and np.var(b) == 0.0:
        return cell | {"ci_low": diff, "ci_high": diff, "pvalue": 1.0 if diff == 0.0 else 0.0}
    test = stats.ttest_ind(a, b, equal_var=True)
    interval = test.confidence_interval(confidence)
    return cell | {"ci_low": float(interval.low), "ci_high": float(interval.high), "pvalue": float(test.pvalue),
                   "statistic": float(test.statistic)}
