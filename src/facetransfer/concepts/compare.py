"""The three paired tests on two models' concept-probe scores, with effect sizes and intervals."""

from __future__ import annotations

import numpy as np

from facetransfer.stats import (
    TestResult,
    corrected_resampled_ci,
    corrected_resampled_ttest,
    five_by_two_cv_ttest,
    mean_ci,
    paired_ttest,
)


def _test(result: TestResult) -> dict:
    return {"statistic": result.statistic, "pvalue": result.pvalue, "df": result.df}


def compare_probes(scores_a: np.ndarray, scores_b: np.ndarray, n_train: int, n_test: int,
                   confidence: float = 0.95) -> dict:
    """Paired tests of probe F1 scores (repeats, 2) of model A (the reference) against model B.

    - plain: the paper's paired t-test on the per-repeat mean F1 (df = repeats - 1);
    - corrected: Nadeau-Bengio over all repeats x 2 fold scores (Bouckaert & Frank's
      corrected repeated CV), n_train/n_test the fold sizes;
    - five_by_two: Dietterich's 5x2cv on the first 5 repeats.
    The difference is A - B: positive when the probe on A is better, i.e. B lost the concept.
    Intervals: plain (Student t over repeats) and corrected (Nadeau-Bengio variance).
    """
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 5:
        raise ValueError(f"scores must both be (repeats >= 5, 2), got {a.shape} and {b.shape}")
    ci_a = corrected_resampled_ci(a.ravel(), n_train, n_test, confidence)
    ci_b = corrected_resampled_ci(b.ravel(), n_train, n_test, confidence)
    diff_plain = mean_ci(a.mean(1) - b.mean(1), confidence)
    diff_corrected = corrected_resampled_ci((a - b).ravel(), n_train, n_test, confidence)
    return {
        "mean_f1_a": ci_a[0], "mean_f1_b": ci_b[0],
        # F1 lies in [0, 1]; the normal-theory interval can cross 0 for a rare AU (AU20: -0.007).
        "ci_f1_a": list(np.clip(ci_a[1:], 0.0, 1.0)), "ci_f1_b": list(np.clip(ci_b[1:], 0.0, 1.0)),
        "mean_diff": diff_corrected[0],
        "ci_diff_plain": list(diff_plain[1:]), "ci_diff_corrected": list(diff_corrected[1:]),
        "plain": _test(paired_ttest(a.mean(1), b.mean(1))),
        "corrected": _test(corrected_resampled_ttest(a.ravel(), b.ravel(), n_train, n_test)),
        "five_by_two": _test(five_by_two_cv_ttest(a[:5], b[:5])),
    }
