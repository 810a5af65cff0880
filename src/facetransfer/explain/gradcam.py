"""Grad-CAM with captum: `LayerGradCam` on the last conv layer, ReLU'd, upsampled to the input size."""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from facetransfer.training.data import normalize


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last nn.Conv2d of the model (VGG16: conv5_3)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def gradcam_maps(model: nn.Module, images: np.ndarray, targets: np.ndarray, batch_size: int = 64,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """Grad-CAM (N, H, W) in [0, 1] (each map divided by its maximum) for uint8 images (N, H, W, 3).

    captum's LayerGradCam(relu_attributions=True) on `last_conv(model)` gives (B, 1, h, w)
    at that layer's resolution (h = H / 16 for VGG16); bilinear upsampling to (H, W).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    cam = LayerGradCam(model, last_conv(model))
    out = np.empty(images.shape[:3], dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        x = normalize(batch.permute(0, 3, 1, 2))
        t = torch.tensor(np.asarray(targets[start:start + batch_size]), dtype=torch.int64, device=device)
        coarse = cam.attribute(x, target=t, relu_attributions=True)  # (B, 1, h, w)
        fine = LayerAttribution.interpolate(coarse, tuple(x.shape[2:]), interpolate_mode="bilinear")[:, 0]
        peak = fine.amax(dim=(1, 2), keepdim=True)
        scaled = torch.where(peak > 0, fine / peak, torch.zeros_like(fine))
        out[start:start + len(batch)] = scaled.detach().cpu().numpy()
    return out
