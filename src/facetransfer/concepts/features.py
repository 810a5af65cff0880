"""The representation a concept probe reads: the output of a VGG's last conv block."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facetransfer.training.data import normalize


@torch.no_grad()
def last_block_features(model: nn.Module, images: np.ndarray, batch_size: int = 256,
                        device: torch.device | str = "cpu") -> np.ndarray:
    """Flattened output of conv block 5 (after its max-pool) for uint8 images (N, H, W, 3) -> (N, D) float32.

    `model.features` ends with block 5's MaxPool2d, so this is the tensor the paper's
    Keras VGG16 calls `block5_pool`: (N, C5, H/32, W/32) flattened in (C, h, w) order;
    D = 64 * 2 * 2 = 256 on the default profile (width 0.125, 64x64), 512 * 7 * 7 at
    224x224. Eval mode (batch norm uses its running statistics), input normalised as in
    training, float32 even when the model runs in bf16 on a GPU.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    device = torch.device(device)
    features = model.features.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
        x = normalize(batch.to(device).permute(0, 3, 1, 2))  # (B, 3, H, W) float32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(features(x).flatten(1).float().cpu())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()
