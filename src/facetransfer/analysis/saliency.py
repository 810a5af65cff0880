"""The `saliency` stage's core: LRP on the images that separate two models, AU ranking, localisation.

Contrast images (Prajod et al. 2022, section 4.2): test images of a class that the
reference (FreezeB5) classified right and FreezeBk wrong. Both models' LRP maps for the
true class are compared inside every AU's region (`explain.region_mass`) and the AUs
ranked (`explain.rank_aus`). Localisation: each model's LRP and Grad-CAM maps on the
test images against the union of the regions of the AUs present in the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from facetransfer.data.labels import ACTION_UNITS, EMOTIONS
from facetransfer.explain import (
    dice_iou,
    difference_maps,
    explain_images,
    gradcam_maps,
    pointing_game,
    rank_aus,
    region_mass,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    unpack_masks,
)


@dataclass(frozen=True)
class TestImages:
    """The prepared test split: images, true labels, AU presence and (packed) AU region masks."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int, EMOTIONS order
    rows: np.ndarray  # (N,) row ids of the prepared dataset
    present: np.ndarray  # (N, A) bool, ground-truth AU intensity > 0 (A = len(ACTION_UNITS))
    packed_regions: np.ndarray  # (N, A, H, ceil(W/8)) uint8

    def regions(self, idx: np.ndarray) -> np.ndarray:
        """(n, A, H, W) bool region masks of the selected images."""
        return unpack_masks(self.packed_regions[idx], self.images.shape[2])

    def truth(self, idx: np.ndarray) -> np.ndarray:
        """(n, H, W): union of the regions of the AUs present in each selected image."""
        return (self.regions(idx) & self.present[idx][:, :, None, None]).any(axis=1)


def load_test_images(prepared: Path, split: str = "test") -> TestImages:
    """prepared/<dataset>/<split>.csv rows with their images and AU region masks (prepare.mask_splits has the split)."""
    table_path = prepared / f"{split}.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: not found (run `facetransfer prepare` first)")
    table = pd.read_csv(table_path)
    gt = [f"gt_au_{au}" for au in ACTION_UNITS]
    missing = [c for c in ["mask_row", *gt] if c not in table.columns]
    if missing or (table["mask_row"] < 0).any() or not (prepared / "masks.npy").is_file():
        raise FileNotFoundError(f"{prepared}: AU region masks or ground-truth AU columns missing for the {split} split "
                                f"(need masks.npy, mask_row and gt_au_* columns; prepare.mask_splits must include {split})")
    rows = table["row"].to_numpy(np.int64)
    images = np.load(prepared / "images.npy", mmap_mode="r")[rows]
    packed = np.load(prepared / "masks.npy", mmap_mode="r")[table["mask_row"].to_numpy(np.int64)]
    return TestImages(images, table["label"].to_numpy(np.int64), rows, table[gt].to_numpy() > 0, packed)


def contrast_indices(correct_reference: np.ndarray, correct_model: np.ndarray, labels: np.ndarray, cls: int,
                     cap: int) -> np.ndarray:
    """Indices of class `cls` right by the reference and wrong by the model, the first `cap` in test order."""
    return np.flatnonzero((labels == cls) & correct_reference & ~correct_model)[:cap]


def compare_pair(maps_reference: np.ndarray, maps_model: np.ndarray, data: TestImages, predictions: dict,
                 reference: str, model: str, cap: int, min_images: int) -> tuple[dict, dict]:
    """One model pair: per class, the contrast images' AU ranking and their maps.

    maps_*: raw LRP (N, H, W) of every test image for its true class. predictions: model
    name -> (N,) predicted labels. Each AU is judged on the contrast images that show it
    (at least `min_images` of them). Returns ({class: {n_images, ranking}}, {class: arrays}).
    """
    right_ref = predictions[reference] == data.labels
    right_model = predictions[model] == data.labels
    ranking, arrays = {}, {}
    for cls, name in enumerate(EMOTIONS):
        idx = contrast_indices(right_ref, right_model, data.labels, cls, cap)
        regions = data.regions(idx)
        rows = rank_aus(region_mass(maps_reference[idx], regions), region_mass(maps_model[idx], regions), ACTION_UNITS,
                        shown=data.present[idx], min_images=min_images)
        ranking[name] = {"n_images": int(idx.size), "ranking": rows}
        arrays[name] = {"index": idx, "rows": data.rows[idx], "reference": maps_reference[idx],
                        "model": maps_model[idx], "difference": difference_maps(maps_reference[idx], maps_model[idx])}
    return ranking, arrays


def localisation(model: nn.Module, maps: np.ndarray, data: TestImages, idx: np.ndarray, threshold: float,
                 batch_size: int, device: str) -> dict:
    """Mean LRP localisation scores and Grad-CAM DICE/IoU over images `idx` (those with AU regions)."""
    truth = data.truth(idx)
    cams = gradcam_maps(model, data.images[idx], data.labels[idx], batch_size, device)
    dice, iou = dice_iou(cams, truth, threshold)
    lrp = {"relevance_mass_accuracy": relevance_mass_accuracy(maps[idx], truth),
           "relevance_rank_accuracy": relevance_rank_accuracy(maps[idx], truth),
           "pointing_game": pointing_game(maps[idx], truth)}
    return {"n_images": int(idx.size), "lrp": {k: float(np.nanmean(v)) for k, v in lrp.items()},
            "gradcam": {"dice": float(np.nanmean(dice)), "iou": float(np.nanmean(iou))}}


def localisation_indices(data: TestImages, cap: int) -> np.ndarray:
    """Test images with at least one AU present (the others have no true region), the first `cap` (0: all)."""
    idx = np.flatnonzero(data.present.any(axis=1))
    return idx[:cap] if cap else idx


def all_maps(model: nn.Module, data: TestImages, batch_size: int, device: str) -> np.ndarray:
    """Raw LRP maps (N, H, W) of every test image for its true class."""
    return explain_images(model, data.images, data.labels, batch_size, device)

