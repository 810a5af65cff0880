"""McNemar's test between two classifiers scored on the same samples."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from statsmodels.stats.contingency_tables import mcnemar

from facetransfer.stats.result import TestResult

# Below this many discordant pairs the chi-square approximation is poor, so the exact
# binomial test is used (the usual rule of thumb; statsmodels' docs suggest the same).
EXACT_BELOW = 25


def _as_correct(name: str, values: ArrayLike) -> np.ndarray:
    """1-D boolean array from booleans or 0/1 numbers; ValueError otherwise."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1) per sample, got dtype {arr.dtype}")
    return arr.astype(bool)


def mcnemar_test(correct_a: ArrayLike, correct_b: ArrayLike) -> TestResult:
    """McNemar's test of equal accuracy for classifiers A and B on the same samples.

    correct_a, correct_b: (N,) booleans, True where that classifier got the sample right.
    Uses the exact binomial test when the discordant count b + c < 25 (method "exact"),
    otherwise chi-square with continuity correction (method "chi2-corrected"); with no
    discordant pairs the classifiers cannot be told apart: statistic 0, p 1. extra holds
    b (A right, B wrong), c (A wrong, B right) and n.
    """
    a = _as_correct("correct_a", correct_a)
    b_ = _as_correct("correct_b", correct_b)
    if a.shape != b_.shape:
        raise ValueError(f"correct_a and correct_b must have the same length, got {a.size} and {b_.size}")
    # Rows: A right / wrong; columns: B right / wrong. Discordant cells are [0, 1] and [1, 0].
    table = np.array(
        [[np.sum(a & b_), np.sum(a & ~b_)], [np.sum(~a & b_), np.sum(~a & ~b_)]], dtype=np.int64
    )
    b, c = int(table[0, 1]), int(table[1, 0])
    extra = {"b": b, "c": c, "n": int(a.size)}
    if b + c == 0:
        return TestResult(0.0, 1.0, "no-discordant-pairs", None, extra)
    if b + c < EXACT_BELOW:
        res = mcnemar(table, exact=True)
        return TestResult(float(res.statistic), float(res.pvalue), "exact", None, extra)
    res = mcnemar(table, exact=False, correction=True)
    return TestResult(float(res.statistic), float(res.pvalue), "chi2-corrected", 1.0, extra)
