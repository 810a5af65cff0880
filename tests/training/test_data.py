"""Augmentations: which transforms the params build, and the greyscale option."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from facetransfer.config import AugmentSpec
from facetransfer.training.data import build_transform


def _types(augment):
    return [type(t) for t in build_transform(augment).transforms]


def test_flip_only_builds_one_random_draw():
    assert _types(AugmentSpec()) == [v2.RandomHorizontalFlip]
    assert AugmentSpec().flip_only


def test_grayscale_is_not_flip_only_and_comes_before_the_flip():
    spec = AugmentSpec(grayscale=0.2)
    assert not spec.flip_only and not spec.geometric
    assert _types(spec) == [v2.RandomGrayscale, v2.RandomHorizontalFlip]
    assert _types(AugmentSpec(rotation=10.0, grayscale=0.2)) == [v2.RandomAffine, v2.RandomGrayscale,
                                                                v2.RandomHorizontalFlip]


def test_grayscale_one_makes_equal_channels_and_keeps_three():
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    out = build_transform(AugmentSpec(hflip=False, grayscale=1.0))(image)
    assert out.shape == (3, 8, 8) and out.dtype == torch.uint8
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert not torch.equal(out, image)
