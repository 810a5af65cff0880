"""Masked copies of a prepared dataset: the trainer's LRP map for its own prediction -> keep-mask -> I * M."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from facetransfer.config import MaskConfig
from facetransfer.explain import explain_images
from facetransfer.masking.masks import mean_mask, negative_mask, perceptive_mask
from facetransfer.names import MASKING_METHODS
from facetransfer.training.data import normalize

METHODS = MASKING_METHODS


def mask_functions(cfg: MaskConfig) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Method name -> relevance (H, W) -> keep-mask (H, W), with the params of `cfg`."""
    p = cfg.perceptive
    return {"negative": lambda r: negative_mask(r, cfg.negative_fraction),
            "mean": mean_mask,
            "perceptive": lambda r: perceptive_mask(r, p.n_points, p.fwhm_px, p.threshold)}


@torch.no_grad()
def predict_labels(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device | str) -> np.ndarray:
    """The model's predicted class (N,) for uint8 images (N, H, W, 3)."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        out.append(model(normalize(batch.permute(0, 3, 1, 2))).argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def keep_masks(relevance: np.ndarray, cfg: MaskConfig) -> dict[str, np.ndarray]:
    """Method -> keep-masks (N, H, W) bool, one per relevance map (N, H, W)."""
    functions = mask_functions(cfg)
    return {m: np.stack([functions[m](r) for r in relevance]) if len(relevance) else np.zeros(relevance.shape, bool)
            for m in METHODS}


def trainer_relevance(model: nn.Module, images: np.ndarray, cfg: MaskConfig,
                      device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(LRP maps (N, H, W) for the trainer's own predictions, those predictions (N,)), as in the paper."""
    predicted = predict_labels(model, images, cfg.batch_size, device)
    return explain_images(model, images, predicted, cfg.batch_size, device), predicted


def apply_mask(images: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """I * M: uint8 images (N, H, W, 3) with the dropped pixels set to 0 in every channel."""
    return images * keep[..., None].astype(images.dtype)
