"""Units as AU detectors: AUC against sklearn, overlap lift by hand, survival across models, patches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from facetransfer.analysis.saliency import TestImages
from facetransfer.analysis.units import (
    detection_auc,
    detectors,
    last_relu,
    overlap_lift,
    survival,
    top_patches,
    unit_activations,
)
from facetransfer.config import ModelSpec
from facetransfer.data.labels import ACTION_UNITS
from facetransfer.training.recipes import build


def test_detection_auc_matches_sklearn_with_ties_and_nan_for_constant_labels():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (40, 3)).astype(float)  # many ties
    present = rng.random((40, 2)) < 0.4
    present = np.column_stack([present, np.zeros(40, bool)])  # third AU never shown
    auc = detection_auc(scores, present)
    for c in range(3):
        for a in range(2):
            assert auc[c, a] == pytest.approx(roc_auc_score(present[:, a], scores[:, c]))
    assert np.isnan(auc[:, 2]).all()


def _one_image(size=8):
    """One image showing AU1 only; AU1's region is the top-left 2x2 block (1/16 of the image)."""
    a = len(ACTION_UNITS)
    regions = np.zeros((1, a, size, size), bool)
    regions[0, 0, :2, :2] = True
    present = np.zeros((1, a), bool)
    present[0, 0] = True
    return TestImages(np.zeros((1, size, size, 3), np.uint8), np.array([0]), np.array([0]), present,
                      np.packbits(regions, axis=-1))


def test_overlap_lift_by_hand():
    images = _one_image()
    acts = np.zeros((1, 2, 8, 8), np.float32)  # activation maps already at image size: no interpolation change
    acts[0, 0, :2, :2] = 1.0  # unit 0: all activation inside AU1's region -> share 1, area 1/16 -> lift 16
    acts[0, 1] = 1.0  # unit 1: spread evenly -> share 1/16 -> lift 1
    lift = overlap_lift(acts, images)
    assert lift[0, 0] == pytest.approx(16.0) and lift[1, 0] == pytest.approx(1.0)
    assert np.isnan(lift[:, 1:]).all()  # AUs not shown: nothing to average


def test_detectors_and_survival_follow_the_same_unit():
    table = pd.DataFrame({"model": ["emotion"] * 2 + ["freeze0"] * 2, "unit": [0, 1, 0, 1], "au": [5] * 4,
                          "auc": [0.9, 0.6, 0.7, 0.8], "lift": [2.0, 2.0, 2.0, 2.0]})
    found = detectors(table, auc_min=0.75, lift_min=1.5)
    assert list(zip(found["model"], found["unit"], strict=True)) == [("emotion", 0), ("freeze0", 1)]
    followed = survival(table, "emotion", (5,), 0.75, 1.5).set_index("model")
    assert followed.loc["emotion", "unit"] == 0 and followed.loc["freeze0", "auc"] == 0.7
    assert followed.loc["emotion", "detector"] and not followed.loc["freeze0", "detector"]


def test_unit_activations_hook_the_last_relu_and_patches_centre_on_the_peak():
    torch.manual_seed(0)
    model = build(ModelSpec(width=0.125), 8)
    images = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    acts = unit_activations(model, images, batch_size=2)
    assert acts.shape == (3, 64, 4, 4) and (acts >= 0).all()  # block-5 units at width 0.125, 64 / 16 cells
    assert last_relu(model) is model.features[-2]  # the ReLU before block 5's max-pool
    fake = np.zeros((3, 1, 4, 4), np.float32)
    fake[1, 0, 0, 3] = 5.0  # image 1 excites the unit most, in the top-right cell (centre y 8, x 56)
    fake[2, 0, 2, 2] = 1.0
    marked = np.zeros((3, 64, 64, 3), np.uint8)
    marked[1, 8, 56] = 255
    patches = top_patches(marked, fake, unit=0, k=2, patch=8)
    assert patches.shape == (2, 8, 8, 3) and patches[0, 4, 4, 0] == 255  # the peak pixel sits in the middle
