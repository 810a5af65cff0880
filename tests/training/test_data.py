"""Augmentations: which transforms the params build, the greyscale option, per-sample seeding."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from facetransfer.config import AugmentSpec
from facetransfer.training.cached import FlipFeatureDataset
from facetransfer.training.data import ImageDataset, Split, build_transform, sample_seed

PAPER = AugmentSpec(rotation=25.0, shift=0.1, shear=0.1, zoom=0.1, grayscale=0.2)


def _types(augment):
    return [type(t) for t in build_transform(augment).transforms]


def test_flip_only_builds_one_random_draw():
    assert _types(AugmentSpec()) == [v2.RandomHorizontalFlip]
    assert AugmentSpec().flip_only


def test_grayscale_is_not_flip_only_and_comes_before_the_flip():
    spec = AugmentSpec(grayscale=0.2)
    assert not spec.flip_only and not spec.geometric
    assert _types(spec) == [v2.RandomGrayscale, v2.RandomHorizontalFlip]
    assert _types(AugmentSpec(rotation=10.0, grayscale=0.2)) == [v2.ToPILImage, v2.RandomAffine, v2.PILToTensor,
                                                                v2.RandomGrayscale, v2.RandomHorizontalFlip]


def test_the_pil_affine_warps_as_torchvisions_tensor_affine_with_the_same_draws():
    # The warp runs on PIL images for speed; on the same random draws it must give a uint8
    # (3, H, W) tensor equal to the tensor path's but for a few boundary pixels.
    shear = float(np.degrees(np.arctan(PAPER.shear)))
    tensor_path = v2.Compose([v2.RandomAffine(degrees=PAPER.rotation, translate=(PAPER.shift, PAPER.shift),
                                              scale=(1 - PAPER.zoom, 1 + PAPER.zoom), shear=(-shear, shear)),
                              v2.RandomGrayscale(p=PAPER.grayscale), v2.RandomHorizontalFlip(p=0.5)])
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8))
    differing = []
    for i, image in enumerate(images):
        torch.manual_seed(i)
        ours = build_transform(PAPER)(image)
        torch.manual_seed(i)
        reference = tensor_path(image)
        assert ours.dtype == torch.uint8 and ours.shape == (3, 64, 64)
        differing.append((ours != reference).any(0).float().mean().item())
    assert max(differing) < 0.01, differing
    assert sum(not torch.equal(build_transform(PAPER)(images[0]), images[0]) for _ in range(3)) == 3


def test_grayscale_one_makes_equal_channels_and_keeps_three():
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    out = build_transform(AugmentSpec(hflip=False, grayscale=1.0))(image)
    assert out.shape == (3, 8, 8) and out.dtype == torch.uint8
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert not torch.equal(out, image)


def _dataset(augment=PAPER, seed=5, n=12):
    images = np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    return ImageDataset(Split(images, np.arange(n), np.arange(n) % 2), build_transform(augment), seed)


def test_normalize_uses_tensors_made_once_and_gives_torchvisions_numbers(monkeypatch):
    # Lists of statistics would be copied to the device on every call (a host stall per batch on CUDA).
    from torchvision.transforms.v2 import functional as F

    from facetransfer.training.data import IMAGENET_MEAN, IMAGENET_STD, normalize

    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    batch = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    expected = F.normalize(F.to_dtype(batch, torch.float32, scale=True), list(IMAGENET_MEAN), list(IMAGENET_STD))
    made = []
    as_tensor = torch.as_tensor
    monkeypatch.setattr(torch, "as_tensor", lambda data, *a, **k: made.append(type(data)) or as_tensor(data, *a, **k))
    for _ in range(3):
        out = normalize(batch)
        assert torch.equal(out, expected) and out.stride() == expected.stride()
    assert all(kind is torch.Tensor for kind in made), made


def test_sample_seeds_differ_by_seed_epoch_and_index():
    seeds = {sample_seed(s, e, i) for s in (0, 1) for e in (0, 1, 2) for i in range(50)}
    assert len(seeds) == 2 * 3 * 50
    assert sample_seed(3, 4, 5) == sample_seed(3, 4, 5)


def test_a_sample_is_augmented_by_its_own_stream_not_by_the_order_of_access():
    data = _dataset()
    data.set_epoch(2)
    forward = [data[i][0] for i in range(len(data))]
    backward = [data[i][0] for i in reversed(range(len(data)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward, strict=True))
    data.set_epoch(3)
    assert sum(not torch.equal(a, data[i][0]) for i, a in enumerate(forward)) >= len(data) // 2


def test_augmentation_leaves_the_global_rng_where_it_was():
    data = _dataset()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    data[0], data[1]
    assert torch.equal(torch.rand(3), expected)  # dropout after the batch draws what it would without workers


def test_loader_workers_give_the_same_batches():
    data = _dataset()
    data.set_epoch(1)

    def batches(workers):
        loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(9),
                            num_workers=workers)
        return [x for x, _ in loader]

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2), strict=True))


def test_cached_flip_replays_the_image_datasets_flip():
    # FlipFeatureDataset picks the mirror with the draw RandomHorizontalFlip makes in ImageDataset.
    data = _dataset(AugmentSpec(), seed=7, n=40)
    images = torch.from_numpy(data.split.images).permute(0, 3, 1, 2)
    ids = torch.arange(1.0, 41.0)
    features = torch.stack([ids, -ids], dim=1)[:, :, None]  # (N, 2, 1): negative = the mirror's
    cached = FlipFeatureDataset(features, data.split.labels, train=True, seed=7)
    for epoch in (0, 1):
        data.set_epoch(epoch)
        cached.set_epoch(epoch)
        flipped = [not torch.equal(data[i][0], images[i]) for i in range(40)]
        assert flipped == [bool(cached[i][0].item() < 0) for i in range(40)] and 5 < sum(flipped) < 35
