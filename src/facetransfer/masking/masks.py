"""Relevance-based data masks (Schiller et al. 2020, section 5.4): which pixels of an image to keep.

Each function maps one relevance map (H, W) to a boolean keep-mask (H, W), True = kept;
the masked image is I * M. Ties and constant maps are defined, not left to chance:

- negative: drops the k = round(fraction * H * W) largest values; when pixels tied at the
  k-th largest value would push the count past k, those tied pixels are kept, so at most
  k pixels go. A constant map keeps all (fraction 1 drops all).
- mean: keeps relevance >= the map's mean. A constant map keeps all.
- perceptive: the n most relevant pixels stand in for gaze fixations (ties broken by
  raster order, row-major, so a constant map uses the first n pixels); a unit-peak
  Gaussian per point with the given full width at half maximum, summed; keeps the
  pixels where that heatmap is above `threshold`.
"""

from __future__ import annotations

import math

import numpy as np


def _map(relevance: np.ndarray) -> np.ndarray:
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim != 2 or r.size == 0 or not np.isfinite(r).all():
        raise ValueError(f"relevance must be a finite (H, W) map, got shape {r.shape}")
    return r


def negative_mask(relevance: np.ndarray, fraction: float = 0.10) -> np.ndarray:
    """Drop the top `fraction` of relevance values (the pixels the trainer found most relevant)."""
    r = _map(relevance)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    k = int(round(fraction * r.size))
    if k == 0:
        return np.ones(r.shape, dtype=bool)
    cut = np.partition(r.ravel(), r.size - k)[r.size - k]  # the k-th largest value
    at_or_above = r >= cut
    if at_or_above.sum() <= k:  # no tie straddles the cut: drop exactly these k pixels
        return ~at_or_above
    return r <= cut  # ties at the cut would push past k: drop only the values above it


def mean_mask(relevance: np.ndarray) -> np.ndarray:
    """Keep the pixels whose relevance is at least the map's mean (drops the less relevant part)."""
    r = _map(relevance)
    return r >= r.mean()


def fwhm_to_sigma(fwhm: float) -> float:
    """Gaussian c (standard deviation) from its full width at half maximum: FWHM = 2 sqrt(2 ln 2) c."""
    return fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def fixation_points(relevance: np.ndarray, n_points: int) -> np.ndarray:
    """(n, 2) row, column of the n most relevant pixels, most relevant first, ties in raster order."""
    r = _map(relevance)
    if not 1 <= n_points <= r.size:
        raise ValueError(f"n_points must be in 1..{r.size}, got {n_points}")
    order = np.argsort(-r.ravel(), kind="stable")[:n_points]
    return np.stack(np.unravel_index(order, r.shape), axis=1)


def perceptive_heatmap(shape: tuple[int, int], points: np.ndarray, fwhm_px: float) -> np.ndarray:
    """Sum over points of exp(-d^2 / (2 c^2)), c from `fwhm_px`: (H, W), 1 at an isolated point."""
    if fwhm_px <= 0:
        raise ValueError(f"fwhm_px must be > 0, got {fwhm_px}")
    c = fwhm_to_sigma(fwhm_px)
    rows, cols = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    heat = np.zeros(shape)
    for y, x in np.asarray(points):
        heat += np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2.0 * c * c))
    return heat


def perceptive_mask(relevance: np.ndarray, n_points: int, fwhm_px: float, threshold: float) -> np.ndarray:
    """Keep the pixels a viewer fixating the n most relevant pixels would perceive (heatmap > threshold)."""
    r = _map(relevance)
    return perceptive_heatmap(r.shape, fixation_points(r, n_points), fwhm_px) > threshold
