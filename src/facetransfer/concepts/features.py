"""The representation a concept probe reads: the output of one of a VGG's conv blocks (the last by default)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facetransfer.models.vgg import NUM_BLOCKS, conv_blocks
from facetransfer.training.data import normalize


def last_block_features(model: nn.Module, images: np.ndarray, batch_size: int = 256,
                        device: torch.device | str = "cpu") -> np.ndarray:
    """Flattened output of conv block 5 (after its max-pool) for uint8 images (N, H, W, 3) -> (N, D) float32.

    The tensor the paper's Keras VGG16 calls `block5_pool`: (N, C5, H/32, W/32) flattened in (C, h, w)
    order; D = 64 * 2 * 2 = 256 on the default profile (width 0.125, 64x64), 512 * 7 * 7 at 224x224.
    """
    return block_features(model, images, NUM_BLOCKS, batch_size, device)


@torch.no_grad()
def block_features(model: nn.Module, images: np.ndarray, block: int, batch_size: int = 256,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Flattened output of conv block `block` (1..5, after its max-pool) for uint8 images (N, H, W, 3) -> (N, D).

    Block 4 on the default profile: (N, 64, 4, 4) -> D = 1024. Eval mode (batch norm uses its running
    statistics), input normalised as in training, float32 even when the model runs in bf16 on a GPU.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if not 1 <= block <= NUM_BLOCKS:
        raise ValueError(f"block must be in 1..{NUM_BLOCKS}, got {block}")
    device = torch.device(device)
    upto = nn.Sequential(*[m for b in conv_blocks(model)[:block] for m in b]).to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
        x = normalize(batch.to(device).permute(0, 3, 1, 2))  # (B, 3, H, W) float32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(upto(x).flatten(1).float().cpu())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()
