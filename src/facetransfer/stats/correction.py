"""Multiple-comparison correction and confidence intervals."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-adjusted p-values, same order as given: the i-th smallest times (m - i), running max, capped at 1.

    pvalues: 1-D, each in [0, 1]. NaNs are not allowed (ValueError): drop untestable
    comparisons before correcting, so they do not silently shrink the family.

    Written out rather than calling statsmodels' multipletests(method="holm"), which gives the same
    numbers (bit for bit, tests/stats/test_stats.py) but runs a full gc.collect() on every call
    (statsmodels PR #8671, not merged in 0.15): ~0.3 s per call in a stage process that holds torch
    and MLflow, seconds per stage, since the analyses correct once per class and model pair.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    if np.isnan(p).any():
        raise ValueError("pvalues contain NaN; remove untestable comparisons before Holm correction")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("pvalues must lie in [0, 1]")
    if p.size == 0:
        return p.copy()
    order = np.argsort(p)  # ties: the running max gives tied p-values the same adjusted value either way
    adjusted = np.minimum(np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)), 1.0)
    out = np.empty_like(adjusted)
    out[order] = adjusted  # (m,) back in the input order
    return out


def add_holm(cells: list[dict]) -> None:
    """Set each cell's `pvalue_holm`: Holm over the family of the cells that have a `pvalue`; None for the
    cells whose `pvalue` is None (untestable, e.g. one seed: left out so they do not grow the family)."""
    tested = [cell for cell in cells if cell["pvalue"] is not None]
    for cell, adjusted in zip(tested, holm([cell["pvalue"] for cell in tested]), strict=True):
        cell["pvalue_holm"] = float(adjusted)
    for cell in cells:
        cell.setdefault("pvalue_holm", None)


def mean_ci(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval for the mean of 1-D values (n >= 2)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"need a 1-D array of at least 2 values, got shape {x.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2.0, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return m, m - half, m + half
