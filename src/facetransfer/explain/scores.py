"""Relevance against regions: AU-region mass, localisation scores (Quantus' definitions), DICE and IoU.

All functions take relevance maps (N, H, W) and boolean masks with the same trailing
(H, W). Relevance is clipped at 0 first: the scores ask where the evidence *for* the
class lies, and mass ratios need non-negative values (Quantus' RelevanceMassAccuracy
assumes it too). Images whose mask is empty get NaN, as in Quantus.
"""

from __future__ import annotations

import numpy as np


def unpack_masks(packed: np.ndarray, width: int) -> np.ndarray:
    """prepare's masks.npy rows (..., H, ceil(W/8)) uint8, bits packed along the width -> bool (..., H, W)."""
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)


def _flat(relevance: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.clip(np.asarray(relevance, dtype=np.float64), 0.0, None)
    m = np.asarray(masks, dtype=bool)
    if r.ndim != 3 or m.shape != r.shape:
        raise ValueError(f"relevance (N, H, W) and masks of the same shape expected, got {r.shape} and {m.shape}")
    return r.reshape(len(r), -1), m.reshape(len(m), -1)


def region_mass(relevance: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Share of each map's positive relevance inside each region: (N, H, W), (N, A, H, W) -> (N, A).

    0 for a map without positive relevance (nothing to share out).
    """
    r = np.clip(np.asarray(relevance, dtype=np.float64), 0.0, None)
    regions = np.asarray(regions, dtype=bool)
    if regions.ndim != 4 or regions.shape[0] != r.shape[0] or regions.shape[2:] != r.shape[1:]:
        raise ValueError(f"regions must be (N, A, H, W) for relevance {r.shape}, got {regions.shape}")
    total = r.sum(axis=(1, 2))  # (N,)
    inside = np.einsum("nhw,nahw->na", r, regions.astype(np.float64))
    return np.divide(inside, total[:, None], out=np.zeros_like(inside), where=total[:, None] > 0)


def relevance_mass_accuracy(relevance: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) positive relevance inside the true region / all positive relevance (Arras et al. 2022)."""
    r, m = _flat(relevance, truth)
    total = r.sum(-1)
    score = np.divide((r * m).sum(-1), total, out=np.zeros(len(r)), where=total > 0)
    score[m.sum(-1) == 0] = np.nan
    return score


def relevance_rank_accuracy(relevance: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) share of the K most relevant pixels that lie in the true region, K = its size (Arras et al. 2022)."""
    r, m = _flat(relevance, truth)
    k = m.sum(-1)  # (N,)
    order = np.argsort(-r, axis=-1, kind="stable")  # most relevant first
    hits = np.take_along_axis(m, order, axis=-1)  # (N, P): is the i-th most relevant pixel inside?
    within_top_k = np.arange(r.shape[1])[None, :] < k[:, None]
    score = np.divide((hits & within_top_k).sum(-1), k, out=np.full(len(r), np.nan), where=k > 0)
    return score


def pointing_game(relevance: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) 1.0 if a most relevant pixel (any of tied maxima) lies in the true region, else 0.0 (Zhang et al. 2018)."""
    r, m = _flat(relevance, truth)
    peak = r == r.max(axis=-1, keepdims=True)
    score = (peak & m).any(-1).astype(np.float64)
    score[m.sum(-1) == 0] = np.nan
    return score


def dice_iou(maps: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """DICE and IoU (N,) of maps in [0, 1] thresholded at `threshold` (>=) against the true regions.

    NaN where both the thresholded map and the truth are empty (nothing to compare).
    """
    maps = np.asarray(maps, dtype=np.float64)
    m = np.asarray(truth, dtype=bool)
    if maps.shape != m.shape:
        raise ValueError(f"maps and truth must have the same shape, got {maps.shape} and {m.shape}")
    on = maps >= threshold
    inter = (on & m).sum(axis=(-2, -1)).astype(np.float64)
    sizes = on.sum(axis=(-2, -1)) + m.sum(axis=(-2, -1))
    union = (on | m).sum(axis=(-2, -1))
    dice = np.divide(2 * inter, sizes, out=np.full(inter.shape, np.nan), where=sizes > 0)
    iou = np.divide(inter, union, out=np.full(inter.shape, np.nan), where=union > 0)
    return dice, iou
