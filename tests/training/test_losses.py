"""Focal loss and class-balanced weights against float64 transcriptions of the papers' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facetransfer.training.losses import FocalLoss, class_balanced_weights, focal_loss

PAPER_COUNTS = [2200, 2800, 900, 800, 600, 450, 800, 450]
PAPER_BETA = 0.99998


def reference_focal(logits: np.ndarray, targets: np.ndarray, gamma: float, weight=None) -> np.ndarray:
    """FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t per sample, a loop over samples in float64."""
    out = []
    for row, t in zip(logits.tolist(), targets.tolist(), strict=True):
        z = max(row)
        denom = sum(math.exp(v - z) for v in row)
        p_t = math.exp(row[t] - z) / denom
        alpha_t = 1.0 if weight is None else float(weight[t])
        out.append(-alpha_t * (1.0 - p_t) ** gamma * math.log(p_t))
    return np.array(out)


def reference_cb(counts, beta: float) -> np.ndarray:
    """Cui et al. 2019: (1 - beta) / (1 - beta^n_c), scaled to sum to C."""
    w = [(1.0 - beta) / (1.0 - beta**n) for n in counts]
    return np.array(w) * len(counts) / sum(w)


def random_batch(seed: int, b: int = 16, c: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g, dtype=torch.float64) * 3  # (B, C), some confident rows
    targets = torch.randint(0, c, (b,), generator=g)  # (B,)
    return logits, targets


@pytest.mark.parametrize("gamma", [0.0, 2.0, 5.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_matches_formula(gamma, weighted):
    logits, targets = random_batch(int(gamma) + 10 * weighted)
    weight = class_balanced_weights(PAPER_COUNTS, 0.999).double() if weighted else None
    ref = reference_focal(logits.numpy(), targets.numpy(), gamma, None if weight is None else weight.numpy())

    per_sample = focal_loss(logits, targets, gamma, weight=weight, reduction="none")
    assert per_sample.dtype == torch.float64 and per_sample.shape == (16,)
    assert np.allclose(per_sample.numpy(), ref, rtol=1e-12, atol=1e-14)
    assert math.isclose(focal_loss(logits, targets, gamma, weight=weight).item(), ref.mean(), rel_tol=1e-12)
    assert math.isclose(focal_loss(logits, targets, gamma, weight, reduction="sum").item(), ref.sum(), rel_tol=1e-12)
    assert math.isclose(FocalLoss(gamma, weight)(logits, targets).item(), ref.mean(), rel_tol=1e-6)


def test_gamma_down_weights_easy_examples():
    logits, targets = random_batch(3)
    ce = focal_loss(logits, targets, 0.0, reduction="none")
    fl = focal_loss(logits, targets, 2.0, reduction="none")
    assert torch.all(fl < ce)


def test_gamma_zero_unweighted_is_cross_entropy():
    logits, targets = random_batch(4)
    assert torch.allclose(focal_loss(logits, targets, 0.0), F.cross_entropy(logits, targets), rtol=1e-12, atol=0)


def test_weighted_mean_divides_by_batch_size():
    # Documented difference from F.cross_entropy, which divides by the sum of the targets' weights.
    logits, targets = random_batch(5)
    weight = torch.linspace(0.5, 2.0, 8, dtype=torch.float64)
    expected = F.cross_entropy(logits, targets, weight=weight, reduction="sum") / len(targets)
    assert torch.allclose(focal_loss(logits, targets, 0.0, weight=weight), expected, rtol=1e-12, atol=0)


def test_module_weight_is_a_buffer():
    loss = FocalLoss(2.0, weight=torch.ones(8))
    assert "weight" in dict(loss.named_buffers())
    assert loss.to(torch.float64).weight.dtype == torch.float64
    assert FocalLoss(2.0).weight is None


def test_gradcheck():
    logits, targets = random_batch(6, b=3, c=4)
    logits.requires_grad_(True)
    weight = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, targets, 2.0, weight=weight), (logits,))
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, targets, 5.0, reduction="none"), (logits,))


def test_focal_rejects_bad_arguments():
    logits, targets = random_batch(7)
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, targets, -1.0)
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, targets, 2.0, reduction="avg")
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        focal_loss(logits, targets[:3], 2.0)


def test_class_balanced_weights_paper_setting():
    w = class_balanced_weights(PAPER_COUNTS, PAPER_BETA)
    assert w.dtype == torch.float32 and w.shape == (8,)
    assert np.allclose(w.numpy(), reference_cb(PAPER_COUNTS, PAPER_BETA), rtol=1e-6, atol=0)
    assert math.isclose(float(w.double().sum()), 8.0, rel_tol=1e-6)
    # Rarer class -> larger weight; equal counts -> equal weights.
    order = np.argsort(PAPER_COUNTS, kind="stable")
    assert np.all(np.diff(w.numpy()[order]) <= 0)  # counts ascending -> weights descending
    assert w[5] > w[4] > w[3] > w[2] > w[0] > w[1]
    assert w[3] == w[6] and w[5] == w[7]


def test_class_balanced_weights_edge_cases():
    assert torch.equal(class_balanced_weights([5, 1, 300], 0.0), torch.ones(3))
    assert torch.allclose(class_balanced_weights(torch.tensor([10, 10]), 0.9), torch.ones(2))
    assert np.allclose(class_balanced_weights(np.array([1, 9]), 0.5).numpy(), reference_cb([1, 9], 0.5))
    with pytest.raises(ValueError, match=r"at least one sample.*\[1\]"):
        class_balanced_weights([3, 0, 4], 0.99)
    for beta in (1.0, -0.1):
        with pytest.raises(ValueError, match="beta"):
            class_balanced_weights([3, 4], beta)
