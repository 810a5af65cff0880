"""Representation drift per conv block: linear CKA between two models on the same images.

Linear centred kernel alignment (Kornblith et al. 2019, "Similarity of Neural Network
Representations Revisited", eq. 5 with linear kernels): for features X (n, p1) and Y (n, p2)
of the same n inputs, columns centred,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

1 for representations equal up to rotation and isotropic scaling, near 0 for unrelated ones.
Written out (a few lines, checked against the formula above in float64 in tests/analysis/test_cka.py)
because no maintained library here ships it: torchmetrics and scikit-learn do not, and the CKA
packages on PyPI are unmaintained single-author repositories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from facetransfer.models.vgg import conv_blocks
from facetransfer.stats import mean_ci

# A frozen block's output is bit-identical in both models, so its CKA is 1 up to float64 rounding.
FROZEN_TOLERANCE = 1e-9


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of x (n, p1) and y (n, p2), rows the same inputs; through the n x n Gram matrices
    (<XX^T, YY^T>_F = ||Y^T X||_F^2), cheaper than the feature form when p > n, as at early blocks."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"need (n, p) feature arrays of the same n >= 2 inputs, got {x.shape} and {y.shape}")
    x = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64) - np.mean(y, axis=0, dtype=np.float64)
    gram_x, gram_y = x @ x.T, y @ y.T  # (n, n) each
    denominator = np.sqrt(np.sum(gram_x * gram_x) * np.sum(gram_y * gram_y))
    if denominator == 0.0:
        raise ValueError("a representation is constant over the inputs: CKA is undefined")
    return float(np.sum(gram_x * gram_y) / denominator)


@torch.no_grad()
def block_outputs(model: nn.Module, images: torch.Tensor, batch_size: int, device: str) -> list[np.ndarray]:
    """Each conv block's output (after its max-pool) for images (N, 3, H, W) -> NUM_BLOCKS arrays (N, C*h*w)."""
    model = model.to(device).eval()
    blocks = [nn.Sequential(*block) for block in conv_blocks(model)]
    outputs: list[list[np.ndarray]] = [[] for _ in blocks]
    for start in range(0, len(images), batch_size):
        h = images[start:start + batch_size].to(device)
        for b, block in enumerate(blocks):
            h = block(h)
            outputs[b].append(h.flatten(1).float().cpu().numpy())
    return [np.concatenate(parts) for parts in outputs]


def cka_by_block(source: list[np.ndarray], other: list[np.ndarray], frozen: int, name: str) -> list[float]:
    """CKA of every block's output, source vs other; the first `frozen` blocks must give 1 (else a ValueError:
    a frozen block that changed is a bug in the freezing, e.g. batch-norm statistics updated in training)."""
    values = [linear_cka(s, o) for s, o in zip(source, other, strict=True)]
    for b in range(frozen):
        if abs(values[b] - 1.0) > FROZEN_TOLERANCE:
            raise ValueError(f"{name}: block {b + 1} was frozen but its CKA with the source is {values[b]:.12f}, not 1")
    return values


def summarise(per_seed: pd.DataFrame, confidence: float) -> dict[str, dict[str, dict]]:
    """Long table (model, seed, block, cka) -> model -> block{b} -> mean, ci_low, ci_high, n_seeds.

    The interval is Student-t over seeds (None with one seed); a frozen block (CKA 1 in every seed)
    gets the interval [1, 1].
    """
    out: dict[str, dict[str, dict]] = {}
    for (model, block), group in per_seed.groupby(["model", "block"], sort=False):
        values = group["cka"].to_numpy(np.float64)
        cell = {"mean": float(values.mean()), "ci_low": None, "ci_high": None, "n_seeds": int(values.size),
                "per_seed": [float(v) for v in values]}
        if values.size > 1:
            cell |= dict(zip(("ci_low", "ci_high"), mean_ci(values, confidence)[1:], strict=True))
        out.setdefault(model, {})[f"block{block}"] = cell
    return out
