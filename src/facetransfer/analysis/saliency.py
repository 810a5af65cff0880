"""The `saliency` stage's core: LRP on the images that separate two models, AU ranking, localisation.

Contrast images (Prajod et al. 2022, section 4.2): test images of a class that the
reference (FreezeB5) classified right and FreezeBk wrong. Both models' LRP maps for the
true class are compared inside every AU's region (`explain.region_mass`) and the AUs
ranked (`explain.rank_aus`). Localisation: each model's LRP and Grad-CAM maps on the
test images against the union of the regions of the AUs present in the image.

"Where is AU k in this image": on the synthetic benchmark, the AU's counterfactual footprint
(the pixels that change when that AU alone is switched off, `data/counterfactuals.py`); on
real data, the AU's region drawn from the 68 landmarks. Real data (AffectNet has landmarks
but no AU labels): the ranking runs on the landmark regions, but every AU is judged on every
contrast image and localisation, which needs the AUs present, is skipped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from facetransfer.data.errors import DatasetFormatError
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
from facetransfer.fsutil import load_array
from facetransfer.stats import add_holm, seed_difference

FOOTPRINTS = "counterfactual footprints"
LANDMARK_REGIONS = "landmark regions"
REGION_FILES = {FOOTPRINTS: "footprints.npy", LANDMARK_REGIONS: "masks.npy"}


@dataclass(frozen=True)
class TestImages:
    """The prepared test split: images, true labels, AU presence and where each AU is (packed masks)."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int, EMOTIONS order
    rows: np.ndarray  # (N,) row ids of the prepared dataset
    present: np.ndarray | None  # (N, A) bool, ground-truth AU intensity > 0 (A = len(ACTION_UNITS)); None: unknown
    packed_regions: np.ndarray  # (N, A, H, ceil(W/8)) uint8
    region_source: str = LANDMARK_REGIONS  # or FOOTPRINTS: what packed_regions holds

    def subset(self, idx: np.ndarray, labels: np.ndarray | None = None) -> "TestImages":
        """The selected images (with new labels when given), regions from the same source."""
        return replace(self, images=self.images[idx], labels=self.labels[idx] if labels is None else labels,
                       rows=self.rows[idx], present=None if self.present is None else self.present[idx],
                       packed_regions=self.packed_regions[idx])

    def regions(self, idx: np.ndarray) -> np.ndarray:
        """(n, A, H, W) bool region masks of the selected images."""
        return unpack_masks(self.packed_regions[idx], self.images.shape[2])

    def shown(self, idx: np.ndarray) -> np.ndarray | None:
        """(n, A) AU presence of the selected images, None when the data has no AU labels."""
        return None if self.present is None else self.present[idx]

    def truth(self, idx: np.ndarray) -> np.ndarray:
        """(n, H, W): union of the regions of the AUs present in each selected image."""
        if self.present is None:
            raise ValueError("no ground-truth AU labels: the true regions are unknown")
        return (self.regions(idx) & self.present[idx][:, :, None, None]).any(axis=1)


def load_test_images(prepared: Path, split: str = "test", require_labels: bool = True) -> TestImages:
    """prepared/<dataset>/<split>.csv rows with their images and AU region masks (prepare.mask_splits has the split).

    Rows without landmarks (mask_row -1) have no regions and are left out, with a note on
    stderr. Without gt_au_* columns (real data) `present` is None, or, with
    `require_labels`, a one-line error (the studies that need the AUs present).
    """
    table_path = prepared / f"{split}.csv"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: not found (run `facetransfer prepare` first)")
    table = pd.read_csv(table_path)
    if "mask_row" not in table.columns or not (prepared / "masks.npy").is_file():
        raise FileNotFoundError(f"{prepared}: AU region masks missing for the {split} split "
                                f"(need masks.npy and a mask_row column; prepare.mask_splits must include {split})")
    without = table["mask_row"] < 0
    if without.all():
        raise DatasetFormatError(table_path, "no row has landmarks, so no AU regions (mask_row is -1 everywhere)")
    if without.any():
        print(f"{table_path}: {int(without.sum())} of {len(table)} rows have no landmarks and are left out",
              file=sys.stderr)
        table = table[~without]
    gt = [f"gt_au_{au}" for au in ACTION_UNITS]
    present = table[gt].to_numpy() > 0 if set(gt) <= set(table.columns) else None
    if present is None and require_labels:
        raise DatasetFormatError(table_path, "no gt_au_* columns; this analysis needs the AUs present in each image "
                                 "(the synthetic benchmark's groundtruth.csv)")
    rows = table["row"].to_numpy(np.int64)
    images = load_array(prepared / "images.npy")[rows]
    # Counterfactual footprints where every row has them (the synthetic benchmark), else landmark regions.
    use_footprints = (prepared / "footprints.npy").is_file() and "footprint" in table and table["footprint"].all()
    source = FOOTPRINTS if use_footprints else LANDMARK_REGIONS
    packed = load_array(prepared / REGION_FILES[source])[table["mask_row"].to_numpy(np.int64)]
    return TestImages(images, table["label"].to_numpy(np.int64), rows, present, packed, source)


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
                        shown=data.shown(idx), min_images=min_images)
        ranking[name] = {"n_images": int(idx.size), "ranking": rows}
        arrays[name] = {"index": idx, "rows": data.rows[idx], "reference": maps_reference[idx],
                        "model": maps_model[idx], "difference": difference_maps(maps_reference[idx], maps_model[idx])}
    return ranking, arrays


def rankings_across_seeds(by_seed: dict[int, dict[str, dict]], confidence: float, alpha: float) -> dict:
    """model -> class -> AU rows replicated over training seeds, largest mean difference first.

    by_seed: seed -> model -> `compare_pair` ranking ({class: {n_images, ranking}}) of that seed's models.
    Per seed, an AU's value is its mean relevance-share difference (reference - model) on that seed's
    contrast images showing it (absent when fewer than min_images: that seed is left out of the cell).
    Mean over seeds, Student-t interval and a t-test of "mean 0" over seeds (`stats.seed_difference`);
    Holm within each model over all its (class, AU) cells with two or more seeds (the family rule).
    An AU is `flagged` when the mean is positive and its Holm p below alpha.
    """
    seeds = sorted(by_seed)
    out: dict[str, dict[str, list[dict]]] = {}
    for model in by_seed[seeds[0]]:
        cells = []
        for cls in by_seed[seeds[0]][model]:
            for au in ACTION_UNITS:
                values = [_au_diff(by_seed[s][model][cls]["ranking"], au) for s in seeds]
                kept = [v for v in values if not np.isnan(v)]
                cell = seed_difference(kept, [0.0] * len(kept), confidence) if kept else {
                    "mean_diff": float("nan"), "ci_low": None, "ci_high": None, "pvalue": None, "n_seeds": 0}
                cells.append({"cls": cls, "au": int(au), **{k: v for k, v in cell.items() if k != "per_seed"},
                              "per_seed": [None if np.isnan(v) else v for v in values]})
        add_holm(cells)
        for c in cells:
            c["flagged"] = bool(c["pvalue_holm"] is not None and c["mean_diff"] > 0 and c["pvalue_holm"] < alpha)
        out[model] = {cls: sorted([{k: v for k, v in c.items() if k != "cls"} for c in cells if c["cls"] == cls],
                                  key=lambda r: (np.isnan(r["mean_diff"]), -np.nan_to_num(r["mean_diff"]), r["au"]))
                      for cls in dict.fromkeys(c["cls"] for c in cells)}
    return out


def _au_diff(rows: list[dict], au: int) -> float:
    return next((float(r["mean_diff"]) for r in rows if r["au"] == au), float("nan"))


def localisation_indices(data: TestImages, cap: int) -> np.ndarray:
    """Test images with at least one AU present (the others have no true region), the first `cap` (0: all).

    Empty without AU labels: the true regions are unknown, so nothing can be scored.
    """
    if data.present is None:
        return np.array([], dtype=np.int64)
    idx = np.flatnonzero(data.present.any(axis=1))
    return idx[:cap] if cap else idx


def contrast_sets(predictions: dict, labels: np.ndarray, reference: str, models: list[str],
                  cap: int) -> dict[str, np.ndarray]:
    """Sorted test indices whose maps each model's comparison needs: its contrast images, and for the
    reference the contrast images of every pair."""
    right_ref = predictions[reference] == labels
    sets = {}
    for name in models:
        right = predictions[name] == labels
        sets[name] = np.unique(np.concatenate(
            [contrast_indices(right_ref, right, labels, cls, cap) for cls in range(len(EMOTIONS))]))
    sets[reference] = np.unique(np.concatenate([np.array([], np.int64), *sets.values()]))
    return sets


class KeptMaps:
    """Maps (K, H, W) of a few test images, indexed by test index like the full (N, H, W) array.

    The saliency stage keeps only the contrast images' maps, so its memory does not grow with
    the test set (a 4,000-image split at 224 px would be 0.8 GB of float32 per model).
    """

    def __init__(self, index: np.ndarray, maps: np.ndarray):
        self.index, self.maps = np.asarray(index, np.int64), maps

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, np.int64)
        pos = np.searchsorted(self.index, idx)
        if idx.size and (pos.max() >= len(self.index) or (self.index[pos] != idx).any()):
            raise KeyError(f"maps of test images {sorted(set(idx.tolist()) - set(self.index.tolist()))[:5]} not kept")
        return self.maps[pos]


@dataclass(frozen=True)
class ModelExplanation:
    lrp: KeptMaps  # raw LRP for the true class, of the kept images
    gradcam: KeptMaps  # Grad-CAM in [0, 1], same images
    scores: pd.DataFrame  # one row per scored image: row, label, three LRP scores, Grad-CAM dice and iou


LOCALISATION_SCORES = {"lrp": ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game"),
                       "gradcam": ("dice", "iou")}


def score_images(lrp: np.ndarray, cams: np.ndarray, data: TestImages, idx: np.ndarray,
                 threshold: float) -> pd.DataFrame:
    """Per image `idx`: LRP (N, H, W) and Grad-CAM (N, H, W) maps against the union of its AUs' regions."""
    truth = data.truth(idx)
    dice, iou = dice_iou(cams, truth, threshold)
    return pd.DataFrame({"row": data.rows[idx], "label": data.labels[idx],
                         "relevance_mass_accuracy": relevance_mass_accuracy(lrp, truth),
                         "relevance_rank_accuracy": relevance_rank_accuracy(lrp, truth),
                         "pointing_game": pointing_game(lrp, truth), "dice": dice, "iou": iou})


def explain_model(model: nn.Module, data: TestImages, keep: np.ndarray, scored: np.ndarray, threshold: float,
                  batch_size: int, device: str, progress=None) -> ModelExplanation:
    """LRP and Grad-CAM of the images in `keep` or `scored`, one batch at a time.

    Maps of `keep` (sorted test indices) are kept; images in `scored` are scored against
    their true regions and their maps dropped. progress(done, total) is called per batch.
    """
    order = np.union1d(keep, scored).astype(np.int64)
    shape = (len(keep), *data.images.shape[1:3])
    lrp_kept, cam_kept = np.empty(shape, np.float32), np.empty(shape, np.float32)
    tables = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        lrp = explain_images(model, data.images[idx], data.labels[idx], batch_size, device)  # (b, H, W)
        cams = gradcam_maps(model, data.images[idx], data.labels[idx], batch_size, device)  # (b, H, W)
        kept = np.isin(idx, keep)
        lrp_kept[np.searchsorted(keep, idx[kept])] = lrp[kept]
        cam_kept[np.searchsorted(keep, idx[kept])] = cams[kept]
        hit = np.isin(idx, scored)
        if hit.any():
            tables.append(score_images(lrp[hit], cams[hit], data, idx[hit], threshold))
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    columns = ["row", "label", *LOCALISATION_SCORES["lrp"], *LOCALISATION_SCORES["gradcam"]]
    scores = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    return ModelExplanation(KeptMaps(keep, lrp_kept), KeptMaps(keep, cam_kept), scores)


def contrast_lrp(model: nn.Module, data: TestImages, keep: np.ndarray, batch_size: int, device: str) -> KeptMaps:
    """Raw LRP of the test images `keep` (sorted test indices) for their true class, no Grad-CAM and no scores:
    what another seed's AU ranking needs."""
    return KeptMaps(keep, explain_images(model, data.images[keep], data.labels[keep], batch_size, device))


def summarise_localisation(scores: pd.DataFrame) -> dict:
    """Mean of each score over the scored images (NaN-skipping, as Quantus): {n_images, lrp: {...}, gradcam: {...}}."""
    return {"n_images": int(len(scores))} | {
        group: {key: float(np.nanmean(scores[key])) if len(scores) else float("nan") for key in keys}
        for group, keys in LOCALISATION_SCORES.items()}


def all_maps(model: nn.Module, data: TestImages, batch_size: int, device: str) -> np.ndarray:
    """Raw LRP maps (N, H, W) of every test image for its true class."""
    return explain_images(model, data.images, data.labels, batch_size, device)

