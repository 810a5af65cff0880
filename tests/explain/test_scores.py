"""Localisation scores against Quantus and hand-worked cases; AU-region mass; DICE/IoU; Grad-CAM shapes."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch

from facetransfer.config import ModelSpec
from facetransfer.explain import (
    dice_iou,
    gradcam_maps,
    last_conv,
    pointing_game,
    region_mass,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    unpack_masks,
)
from facetransfer.training.recipes import build


def _batch(seed, n=12, size=8):
    rng = np.random.default_rng(seed)
    relevance = rng.standard_normal((n, size, size))  # continuous: no ties in the ranking
    truth = rng.random((n, size, size)) < 0.25
    truth[0] = False  # an empty region -> NaN
    return relevance, truth


@pytest.mark.parametrize(("ours", "theirs"), [
    (relevance_mass_accuracy, quantus.RelevanceMassAccuracy),
    (relevance_rank_accuracy, quantus.RelevanceRankAccuracy),
    (pointing_game, quantus.PointingGame),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_localisation_scores_match_quantus_on_clipped_relevance(ours, theirs, seed):
    relevance, truth = _batch(seed)
    clipped = np.clip(relevance, 0, None)
    metric = theirs(normalise=False, abs=False, disable_warnings=True)
    expected = np.asarray(metric.evaluate_batch(a_batch=clipped[:, None], s_batch=truth[:, None]), dtype=float)
    got = ours(relevance, truth)
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-12)


def test_localisation_hand_worked():
    relevance = np.array([[[4.0, 1.0], [-2.0, 3.0]]])
    truth = np.array([[[False, False], [True, True]]])
    assert relevance_mass_accuracy(relevance, truth)[0] == pytest.approx(3 / 8)  # negatives clipped
    assert relevance_rank_accuracy(relevance, truth)[0] == pytest.approx(0.5)  # top-2: 4 (out), 3 (in)
    assert pointing_game(relevance, truth)[0] == 0.0
    assert pointing_game(-relevance, truth)[0] == 1.0  # clipped -> max 2.0 at (1, 0)


def test_region_mass_shares_positive_relevance_per_region():
    relevance = np.array([[[1.0, 3.0], [-5.0, 0.0]]])
    regions = np.array([[[[True, False], [True, False]], [[True, True], [True, True]], [[False] * 2] * 2]])
    np.testing.assert_allclose(region_mass(relevance, regions), [[0.25, 1.0, 0.0]])
    np.testing.assert_allclose(region_mass(-np.ones((1, 2, 2)), regions), [[0.0, 0.0, 0.0]])


def test_dice_iou_hand_worked():
    maps = np.array([[[0.9, 0.6], [0.2, 0.0]]])
    truth = np.array([[[True, False], [True, False]]])
    dice, iou = dice_iou(maps, truth, threshold=0.5)  # on: (0,0), (0,1); truth: (0,0), (1,0)
    assert dice[0] == pytest.approx(2 * 1 / 4) and iou[0] == pytest.approx(1 / 3)
    dice, iou = dice_iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool), 0.5)
    assert np.isnan(dice[0]) and np.isnan(iou[0])


def test_unpack_masks_inverts_packbits():
    masks = np.random.default_rng(0).random((3, 2, 5, 13)) < 0.5
    np.testing.assert_array_equal(unpack_masks(np.packbits(masks, axis=-1), 13), masks)


def test_gradcam_maps_are_upsampled_and_scaled():
    torch.manual_seed(0)
    model = build(ModelSpec(width=0.0625), 8)
    assert last_conv(model) is [m for m in model.features if isinstance(m, torch.nn.Conv2d)][-1]
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    maps = gradcam_maps(model, images, np.array([0, 3, 7]), batch_size=2)
    assert maps.shape == (3, 64, 64) and maps.min() >= 0.0 and maps.max() <= 1.0
    assert all(m.max() in (0.0, 1.0) for m in maps)
