"""Masks against hand-computed cases, including ties and constant maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facetransfer.masking import (
    fixation_points,
    fwhm_to_sigma,
    mean_mask,
    negative_mask,
    perceptive_heatmap,
    perceptive_mask,
)


def test_negative_drops_the_top_fraction():
    r = np.arange(20, dtype=float).reshape(4, 5)  # 0..19
    keep = negative_mask(r, fraction=0.10)  # k = 2: drop 19 and 18
    assert (~keep).sum() == 2 and not keep[3, 4] and not keep[3, 3] and keep[3, 2]
    assert negative_mask(r, fraction=0.0).all() and not negative_mask(r, fraction=1.0).any()


def test_negative_keeps_ties_that_would_exceed_the_fraction():
    r = np.array([[5.0, 5.0, 5.0, 1.0], [0.0, 0.0, 0.0, 0.0]])  # k = round(0.25 * 8) = 2, three tied at 5
    keep = negative_mask(r, fraction=0.25)
    np.testing.assert_array_equal(keep, np.ones_like(keep))  # nothing strictly above the cut value 5
    r2 = np.array([[9.0, 5.0, 5.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(negative_mask(r2, fraction=0.25), r2 < 9.0)  # only 9 goes: at most k
    assert negative_mask(np.full((3, 3), 0.7), 0.10).all()  # constant map: no ordering, keep all


def test_mean_mask_hand_worked_and_constant():
    r = np.array([[0.0, 1.0], [2.0, 5.0]])  # mean 2
    np.testing.assert_array_equal(mean_mask(r), [[False, False], [True, True]])
    assert mean_mask(np.zeros((2, 3))).all()


def test_fwhm_to_sigma_is_the_textbook_relation():
    assert fwhm_to_sigma(2 * math.sqrt(2 * math.log(2))) == pytest.approx(1.0)
    c = fwhm_to_sigma(5.0)
    assert math.exp(-(2.5**2) / (2 * c * c)) == pytest.approx(0.5)  # half maximum at half the FWHM


def test_fixation_points_most_relevant_first_ties_in_raster_order():
    r = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, 3.0]])
    np.testing.assert_array_equal(fixation_points(r, 4), [[0, 1], [0, 2], [1, 2], [1, 1]])
    np.testing.assert_array_equal(fixation_points(np.zeros((2, 2)), 2), [[0, 0], [0, 1]])


def test_perceptive_heatmap_and_mask_hand_worked():
    heat = perceptive_heatmap((1, 7), np.array([[0, 3]]), fwhm_px=2.0)
    np.testing.assert_allclose(heat[0, [2, 3, 4]], [0.5, 1.0, 0.5])  # half maximum one pixel away
    r = np.zeros((1, 7))
    r[0, 3] = 1.0
    keep = perceptive_mask(r, n_points=1, fwhm_px=2.0, threshold=0.4)
    np.testing.assert_array_equal(keep[0], [False, False, True, True, True, False, False])
    two = perceptive_heatmap((1, 3), np.array([[0, 0], [0, 2]]), fwhm_px=2.0)
    np.testing.assert_allclose(two[0], [1.0 + 0.5**4, 1.0, 1.0 + 0.5**4])  # Gaussians add


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((0, 3)), np.array([[np.nan, 1.0]])])
def test_masks_reject_bad_maps(bad):
    with pytest.raises(ValueError, match="relevance must be a finite"):
        mean_mask(bad)
