"""The trainee architectures of the masking study: built by name, from torchvision."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.resnet import BasicBlock, ResNet

from facetransfer.models.trainees import build_trainee as build_model


def test_resnet10_is_torchvision_resnet_with_one_basic_block_per_stage():
    model = build_model("resnet10", num_classes=8)
    assert isinstance(model, ResNet)
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [len(stage) for stage in stages] == [1, 1, 1, 1]
    assert all(isinstance(stage[0], BasicBlock) for stage in stages)
    # ResNet-18 has two BasicBlocks per stage: ResNet-10 drops one 64-512 channel block of each
    n10 = sum(p.numel() for p in model.parameters())
    n18 = sum(p.numel() for p in build_model("resnet18", num_classes=8).parameters())
    assert n10 == 4_909_896 and n18 == 11_180_616
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 8)


@pytest.mark.parametrize("name", ["resnet10", "resnet18", "mobilenet_v2"])
def test_every_trainee_classifies_a_64px_batch(name):
    model = build_model(name, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 5)


def test_mobilenet_takes_a_width_and_the_resnets_refuse_one():
    narrow = sum(p.numel() for p in build_model("mobilenet_v2", num_classes=8, width=0.35).parameters())
    full = sum(p.numel() for p in build_model("mobilenet_v2", num_classes=8).parameters())
    assert narrow < full / 3
    with pytest.raises(ValueError, match="resnet10 takes no width multiplier"):
        build_model("resnet10", num_classes=8, width=0.5)


def test_an_unknown_trainee_is_named():
    with pytest.raises(ValueError, match="unknown trainee 'vgg16'; choose one of: resnet10, resnet18, mobilenet_v2"):
        build_model("vgg16", num_classes=8)
