"""Weighted focal loss with class-balanced weights (Prajod et al. 2022, eq. (1) and (2)).

Focal loss (Lin et al. 2017), softmax multi-class form:
    FL(p_t) = -alpha_t * (1 - p_t)^gamma * log(p_t)
with p_t the softmax probability of the true class and alpha_t that class's weight.
Class-balanced weights (Cui et al. 2019): w_c = (1 - beta) / (1 - beta^{n_c}), scaled so
that they sum to the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("mean", "sum", "none")


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma: float,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss of logits (B, C) against class indices (B,).

    weight: (C,) class weights alpha_c, or None for all ones. reduction: "none" gives the
    per-sample losses (B,), "sum" their sum, "mean" their sum divided by B (the paper's
    batch mean). Note: unlike F.cross_entropy, the weighted "mean" divides by B, not by
    the sum of the targets' weights; with gamma=0 and no weights the two agree.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        shapes = f"{tuple(logits.shape)} and {tuple(targets.shape)}"
        raise ValueError(f"expected logits (B, C) and targets (B,), got {shapes}")
    # Written by hand: torchvision.ops.sigmoid_focal_loss is the binary (per-class
    # sigmoid) form; the paper uses the softmax multi-class form.
    log_p = F.log_softmax(logits, dim=1)  # (B, C), stable log-probabilities
    log_pt = log_p.gather(1, targets.long().unsqueeze(1)).squeeze(1)  # (B,) log p_t
    # 1 - p_t as -expm1(log p_t): exact when p_t is close to 1, where 1 - exp() cancels.
    loss = -(-torch.expm1(log_pt)).pow(gamma) * log_pt  # (B,)
    if weight is not None:
        alpha = weight.to(device=logits.device, dtype=logits.dtype)  # (C,)
        loss = alpha[targets.long()] * loss  # (B,) alpha_t * FL
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FocalLoss(nn.Module):
    """Module form of `focal_loss`; `weight` (C,) is a buffer, so it follows `.to(device)`."""

    def __init__(self, gamma: float, weight: torch.Tensor | None = None, reduction: str = "mean"):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.gamma = gamma
        self.reduction = reduction
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.gamma, weight=self.weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}, weighted={self.weight is not None}"


def class_balanced_weights(counts: Sequence[int] | np.ndarray | torch.Tensor, beta: float) -> torch.Tensor:
    """Cui et al. 2019 weights (C,) float32 from per-class sample counts, summing to C.

    w_c = (1 - beta) / (1 - beta^{n_c}), then w * C / sum(w) as in Cui et al.'s code;
    beta in [0, 1), beta = 0 gives all ones; rarer classes get larger weights.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = np.asarray(counts.cpu() if isinstance(counts, torch.Tensor) else counts, dtype=np.float64)  # (C,)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence, got shape {n.shape}")
    if np.any(n < 1):
        empty = [int(c) for c in np.flatnonzero(n < 1)]
        raise ValueError(f"every class needs at least one sample; classes {empty} have counts {n[empty].tolist()}")
    # In float64: with beta near 1 (paper: 0.99998) 1 - beta^n is small and float32 loses digits.
    # (C,) 1 - beta^n_c = (1 - beta) * E_c, with E_c the effective number of samples of class c
    one_minus_pow = 1.0 - np.power(beta, n)
    w = (1.0 - beta) / one_minus_pow  # (C,) 1 / E_c
    w = w * n.size / w.sum()
    return torch.from_numpy(w).float()
