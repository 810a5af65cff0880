"""Exact feature caching for retraining a head on a frozen network.

With every conv block frozen and horizontal flip the only augmentation, a
training step sees one of exactly two inputs per image: the image or its
mirror. So the frozen part's output is computed once for both, and the head
trains on those features. The random draws are replayed: the DataLoader shuffle from
the same generator, each sample's flip as the first `torch.rand(1)` of its own
stream `sample_seed(seed, epoch, index)` (as `v2.RandomHorizontalFlip` draws it in
ImageDataset), then the head's dropout from the global RNG; so the result equals
training through the frozen network up to float round-off (tests/training/test_loop.py
trains both ways; tests/training/test_data.py checks the replayed flips).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facetransfer.training.data import ImageDataset, Split, build_transform, normalize, sample_seed


def backbone(model: nn.Module) -> nn.Module:
    """The frozen part of a VGG: conv features, global pooling, flatten -> (B, C)."""
    return nn.Sequential(model.features, model.avgpool, nn.Flatten())


@torch.no_grad()
def flip_features(model: nn.Module, split: Split, batch_size: int, device: torch.device,
                  mirrors: bool = True) -> torch.Tensor:
    """(N, 2, C) features of every image (index 0) and of its mirror (index 1); (N, 1, C) without mirrors."""
    net = backbone(model).to(device).eval()
    out = []
    for x, _ in DataLoader(ImageDataset(split, build_transform(None)), batch_size=batch_size, shuffle=False):
        x = normalize(x.to(device))  # (B, 3, H, W); flipping commutes with per-channel normalisation
        views = [net(x), net(torch.flip(x, dims=[3]))] if mirrors else [net(x)]
        out.append(torch.stack(views, dim=1).float().cpu())
    return torch.cat(out)


class FlipFeatureDataset(Dataset):
    """(features (C,), label) pairs; in training, the mirror is chosen with the flip's own draw."""

    def __init__(self, features: torch.Tensor, labels: np.ndarray, train: bool, seed: int = 0):
        self.features, self.labels, self.train, self.seed, self.epoch = features, labels, train, seed, 0
        self.generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # v2.RandomHorizontalFlip(p=0.5) flips when torch.rand(1) < 0.5, the first draw of the sample's stream.
        flip = False
        if self.train:
            self.generator.manual_seed(sample_seed(self.seed, self.epoch, i))
            flip = bool(torch.rand(1, generator=self.generator) < 0.5)
        return self.features[i, int(flip)], int(self.labels[i])
