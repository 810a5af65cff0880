"""Paired t-tests for comparing two models' cross-validation scores.

The paper's plain paired t-test over repeated 2-fold CV treats overlapping resamples as
independent and so overstates significance; the Nadeau-Bengio corrected resampled t-test
and Dietterich's 5x2cv t-test are reported beside it (DESIGN.md section 7).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from facetransfer.stats.result import TestResult


def _paired(scores_a: ArrayLike, scores_b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 1-D paired score arrays with at least 2 entries."""
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"scores must be 1-D arrays of the same length, got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"need at least 2 paired scores, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite")
    return a, b


def _t_from_ratio(mean: float, var_scaled: float, df: float) -> tuple[float, float]:
    """t = mean / sqrt(var_scaled) and its two-sided Student-t p-value.

    Zero variance (identical differences): no spread to judge against, so t = 0, p = 1
    when the mean difference is 0 too, else t = +-inf, p = 0.
    """
    if var_scaled <= 0.0:
        if mean == 0.0:
            return 0.0, 1.0
        return float(np.copysign(np.inf, mean)), 0.0
    t = mean / np.sqrt(var_scaled)
    return float(t), float(2.0 * stats.t.sf(abs(t), df))


def paired_ttest(scores_a: ArrayLike, scores_b: ArrayLike) -> TestResult:
    """The paper's plain paired t-test (scipy.stats.ttest_rel) on (J,) paired scores; df = J - 1.

    Reported for comparability only: it assumes the J scores are independent, which
    overlapping CV resamples are not. Zero-variance differences (e.g. a model compared
    with itself) follow `_t_from_ratio` instead of scipy's nan, like the other tests.
    """
    a, b = _paired(scores_a, scores_b)
    d = a - b
    extra = {"mean_diff": float(np.mean(d)), "n": int(a.size)}
    if np.var(d) == 0.0:
        t, p = _t_from_ratio(float(np.mean(d)), 0.0, a.size - 1)
        return TestResult(t, p, "paired-t", float(a.size - 1), extra)
    res = stats.ttest_rel(a, b)
    return TestResult(float(res.statistic), float(res.pvalue), "paired-t", float(a.size - 1), extra)


def corrected_resampled_ttest(
    scores_a: ArrayLike, scores_b: ArrayLike, n_train: int, n_test: int
) -> TestResult:
    """Nadeau & Bengio (2003) corrected resampled t-test on (J,) paired resample scores.

    d_j = a_j - b_j; t = mean(d) / sqrt((1/J + n_test/n_train) * var(d, ddof=1)), df = J - 1.
    The n_test/n_train term inflates the variance for the correlation between resamples
    that share training data. Zero variance: see `_t_from_ratio` (t 0 / p 1 or +-inf / 0).
    """
    a, b = _paired(scores_a, scores_b)
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    d = a - b
    j = d.size
    mean = float(np.mean(d))
    var_scaled = (1.0 / j + n_test / n_train) * float(np.var(d, ddof=1))
    t, p = _t_from_ratio(mean, var_scaled, j - 1)
    extra = {"mean_diff": mean, "n": j, "n_train": int(n_train), "n_test": int(n_test)}
    return TestResult(t, p, "nadeau-bengio", float(j - 1), extra)


def five_by_two_cv_ttest(scores_a: ArrayLike, scores_b: ArrayLike) -> TestResult:
    """Dietterich (1998) 5x2cv paired t-test on scores shaped (5, 2): replication x fold.

    p_i^(j) = a - b; s_i^2 = sum_j (p_i^(j) - mean_j p_i^(j))^2;
    t = p_1^(1) / sqrt(mean_i s_i^2), df = 5. Zero variance as in `corrected_resampled_ttest`.
    """
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != (5, 2) or b.shape != (5, 2):
        raise ValueError(
            f"5x2cv needs scores shaped (5, 2) (5 replications x 2 folds), got {a.shape} and {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite")
    p = a - b  # (5, 2)
    s2 = ((p - p.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)  # (5,)
    t, pval = _t_from_ratio(float(p[0, 0]), float(s2.mean()), 5)
    extra = {"mean_diff": float(p.mean())}
    return TestResult(t, pval, "5x2cv", 5.0, extra)


def corrected_resampled_ci(values: ArrayLike, n_train: int, n_test: int,
                           confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) for J resample scores (or paired differences) with the Nadeau-Bengio variance.

    mean +- t_{J-1} * sqrt((1/J + n_test/n_train) * var(values, ddof=1)): the interval that
    matches `corrected_resampled_ttest` (it excludes 0 exactly when that test rejects at
    1 - confidence). The plain interval (`mean_ci`) is too narrow for overlapping resamples.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"need a 1-D finite array of at least 2 values, got shape {x.shape}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m = float(x.mean())
    se = np.sqrt((1.0 / x.size + n_test / n_train) * np.var(x, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, x.size - 1) * se)
    return m, m - half, m + half
