"""Which conv units behave like action-unit detectors (Khorrami et al. 2015/2017), and do they survive fine-tuning?

A unit is one channel of the last conv layer's ReLU output (block 5, before its max-pool):
(N, C, h, w) on the CK+ peak frames. Per (unit, AU):
- detection: ROC AUC of the unit's peak activation (max over h, w) for AU presence;
- overlap: over the images showing the AU, the share of the unit's (upsampled) activation
  inside the AU's region, divided by the region's share of the image (lift; 1 = no better
  than spread evenly).
A unit is an AU detector when both pass the params' thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import nn

from facetransfer.analysis.saliency import TestImages
from facetransfer.data.labels import ACTION_UNITS
from facetransfer.explain import region_mass
from facetransfer.training.data import normalize


def last_relu(model: nn.Module) -> nn.ReLU:
    """The ReLU after the last conv of `model.features` (the block-5 units, before the pool)."""
    relus = [m for m in model.features if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("model.features has no ReLU")
    return relus[-1]


@torch.no_grad()
def unit_activations(model: nn.Module, images: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """(N, C, h, w) float32 activations of the last conv ReLU for uint8 images (N, H, W, 3)."""
    model = model.to(device).eval()
    captured: list[torch.Tensor] = []
    handle = last_relu(model).register_forward_hook(lambda _m, _i, out: captured.append(out.detach().cpu().clone()))
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            model(normalize(batch.permute(0, 3, 1, 2)))
    finally:
        handle.remove()
    return torch.cat(captured).numpy()


def detection_auc(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """ROC AUC (C, A) of each score column (N, C) for each presence column (N, A); NaN where an AU is
    always or never present. Mann-Whitney form: (rank sum of positives - n1 (n1 + 1) / 2) / (n1 n0), ties
    get average ranks, which is what sklearn's roc_auc_score computes (tested)."""
    ranks = rankdata(scores, axis=0)  # (N, C)
    pos = present.astype(np.float64)  # (N, A)
    n1 = pos.sum(axis=0)
    n0 = len(pos) - n1
    rank_sum = ranks.T @ pos  # (C, A)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)
    auc[:, (n1 == 0) | (n0 == 0)] = np.nan
    return auc


def overlap_lift(activations: np.ndarray, images: TestImages) -> np.ndarray:
    """(C, A): mean over images showing the AU of (activation share inside the AU region / region area share)."""
    size = images.images.shape[1:3]
    idx = np.arange(len(images.labels))
    regions = images.regions(idx)  # (N, A, H, W)
    area = regions.mean(axis=(2, 3))  # (N, A) share of the image
    upsampled = nn.functional.interpolate(torch.from_numpy(activations), size=size, mode="bilinear",
                                          align_corners=False).numpy()  # (N, C, H, W)
    lift = np.full((activations.shape[1], len(ACTION_UNITS)), np.nan)
    shown = images.present & (area > 0)  # (N, A)
    counts = shown.sum(axis=0)  # (A,) images showing each AU
    for c in range(activations.shape[1]):
        share = region_mass(upsampled[:, c], regions)  # (N, A)
        ratio = np.divide(share, area, out=np.zeros_like(share), where=area > 0)
        sums = (ratio * shown).sum(axis=0)
        lift[c] = np.divide(sums, counts, out=np.full(len(ACTION_UNITS), np.nan), where=counts > 0)
    return lift


def unit_table(model_name: str, activations: np.ndarray, images: TestImages) -> pd.DataFrame:
    """One row per (unit, AU): model, unit, au, auc, lift."""
    auc = detection_auc(activations.max(axis=(2, 3)), images.present)
    lift = overlap_lift(activations, images)
    units, aus = np.meshgrid(np.arange(auc.shape[0]), np.arange(auc.shape[1]), indexing="ij")
    return pd.DataFrame({"model": model_name, "unit": units.ravel(), "au": np.array(ACTION_UNITS)[aus.ravel()],
                         "auc": auc.ravel(), "lift": lift.ravel()})


def detectors(table: pd.DataFrame, auc_min: float, lift_min: float) -> pd.DataFrame:
    """The (unit, AU) rows that behave as AU detectors, best AUC first per model and AU."""
    chosen = table[(table["auc"] >= auc_min) & (table["lift"] >= lift_min)]
    return chosen.sort_values(["model", "au", "auc"], ascending=[True, True, False]).reset_index(drop=True)


def survival(table: pd.DataFrame, reference: str, aus: tuple[int, ...], auc_min: float,
             lift_min: float) -> pd.DataFrame:
    """For each tracked AU, the reference model's best detector unit (else its highest-AUC unit) and that same
    unit's AUC / lift and detector status in every model.

    Same index, same unit: fine-tuning starts from the reference's weights, so a unit keeps its place.
    """
    found = detectors(table, auc_min, lift_min)
    rows = []
    for au in aus:
        best = found[(found["model"] == reference) & (found["au"] == au)]
        if best.empty:  # no detector: follow the reference's highest-AUC unit, marked as not a detector
            best = table[(table["model"] == reference) & (table["au"] == au)].sort_values("auc", ascending=False)
        if best.empty or best["auc"].isna().all():
            continue  # the AU is never (or always) shown: nothing to follow
        unit = int(best.iloc[0]["unit"])
        same = table[(table["unit"] == unit) & (table["au"] == au)]
        for row in same.itertuples():
            rows.append({"au": au, "unit": unit, "model": row.model, "auc": row.auc, "lift": row.lift,
                         "detector": bool(row.auc >= auc_min and row.lift >= lift_min)})
    return pd.DataFrame(rows)


def top_patches(images: np.ndarray, activations: np.ndarray, unit: int, k: int, patch: int) -> np.ndarray:
    """(k, patch, patch, 3) crops of the k images that excite `unit` most, centred on its peak location."""
    peak = activations[:, unit].reshape(len(activations), -1)  # (N, h*w)
    order = np.argsort(-peak.max(axis=1), kind="stable")[:k]
    h, w = activations.shape[2:]
    size = images.shape[1]
    half = patch // 2
    padded = np.pad(images, ((0, 0), (half, half), (half, half), (0, 0)))
    crops = []
    for i in order:
        y, x = divmod(int(peak[i].argmax()), w)
        cy, cx = int((y + 0.5) * size / h), int((x + 0.5) * images.shape[2] / w)  # cell centre in pixels
        crops.append(padded[i, cy:cy + patch, cx:cx + patch])
    return np.stack(crops)
