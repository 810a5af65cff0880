"""Linear CKA: the published formula in float64, its invariances, the frozen-block check, the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from facetransfer.analysis.cka import block_outputs, cka_by_block, linear_cka, summarise
from facetransfer.models.vgg import build_vgg16, freeze_blocks


def _feature_form(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), columns centred, float64."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_gram_form_equals_the_published_feature_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7))
    y = x @ rng.normal(size=(7, 12)) + rng.normal(size=(40, 12))
    assert linear_cka(x, y) == pytest.approx(_feature_form(x, y), rel=1e-12)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_invariant_to_rotation_and_scale_and_one_for_identical_features():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 6))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, 3.5 * x @ rotation + 2.0) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, rng.normal(size=(30, 6))) < 0.6


def test_bad_shapes_and_constant_features_are_refused():
    with pytest.raises(ValueError, match="same n"):
        linear_cka(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((4, 2)), np.random.default_rng(0).normal(size=(4, 2)))


def _model(seed: int):
    torch.manual_seed(seed)
    return build_vgg16(8, width=0.125, batch_norm=True).eval()


def test_frozen_blocks_give_one_and_a_changed_frozen_block_is_caught():
    source = _model(0)
    images = torch.randn(12, 3, 32, 32)
    model = _model(0)
    freeze_blocks(model, 2)
    with torch.no_grad():  # what fine-tuning does to the trainable blocks
        for p in model.features[14:].parameters():
            p.add_(0.5 * torch.randn_like(p))
    outputs = block_outputs(source, images, 5, "cpu"), block_outputs(model, images, 5, "cpu")
    assert [o.shape[0] for o in outputs[0]] == [12] * 5
    values = cka_by_block(*outputs, frozen=2, name="freeze2")
    assert values[:2] == pytest.approx([1.0, 1.0], abs=1e-9) and values[4] < 1.0
    with pytest.raises(ValueError, match="block 3 was frozen"):
        cka_by_block(*outputs, frozen=3, name="freeze3")


def test_summary_is_a_t_interval_over_seeds():
    rows = [{"model": "freeze0", "seed": s, "block": 1, "cka": v} for s, v in ((1, 0.8), (2, 0.7), (3, 0.9))]
    rows += [{"model": "negative", "seed": None, "block": 1, "cka": 0.95}]
    summary = summarise(pd.DataFrame(rows), 0.95)
    cell = summary["freeze0"]["block1"]
    interval = stats.ttest_1samp([0.8, 0.7, 0.9], 0.0).confidence_interval(0.95)
    assert cell["mean"] == pytest.approx(0.8) and cell["n_seeds"] == 3
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((interval.low, interval.high))
    assert summary["negative"]["block1"]["ci_low"] is None and summary["negative"]["block1"]["n_seeds"] == 1
