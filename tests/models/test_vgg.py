"""VGG16 on torchvision's classes: width scaling, head, block freezing, offline ImageNet and checkpoint loading."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vgg import VGG, VGG16_BN_Weights, VGG16_Weights

import facetransfer.models.vgg as vgg_module
from facetransfer.models import MODELS, build_model
from facetransfer.models.vgg import (
    build_vgg16,
    conv_blocks,
    freeze_blocks,
    frozen_block_count,
    load_checkpoint_weights,
    load_imagenet_features,
    new_head,
    set_frozen_eval,
)

SMALL = 0.125  # 8..64 channels: fast on CPU
# Indices in `features` of the conv layers of each block of VGG16 without batch norm
# (conv, relu, ..., maxpool), written out from torchvision's layout.
CONV_INDICES = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]


def small_model(num_classes: int = 8, batch_norm: bool = False, seed: int = 0) -> VGG:
    torch.manual_seed(seed)
    return build_vgg16(num_classes, width=SMALL, batch_norm=batch_norm)


def conv_channels(model: VGG) -> list[int]:
    return [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]


# --- construction ----------------------------------------------------------------------


def test_built_with_torchvision_classes(monkeypatch):
    calls = []
    real = vgg_module.make_layers

    def spy(cfg, batch_norm=False):
        calls.append((list(cfg), batch_norm))
        return real(cfg, batch_norm=batch_norm)

    monkeypatch.setattr(vgg_module, "make_layers", spy)
    model = build_vgg16(8, width=0.5, batch_norm=True)
    assert isinstance(model, torchvision.models.vgg.VGG)
    assert calls == [([32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M"], True)]


def test_width_one_features_match_torchvision_vgg16_keys():
    # Meta device: only names and shapes are compared, nothing is allocated.
    with torch.device("meta"):
        ours = build_vgg16(8).features.state_dict()
        theirs = {k: v for k, v in torchvision.models.vgg16().state_dict().items() if k.startswith("features.")}
    assert {f"features.{k}": v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (1.0, [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]),
        (0.25, [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]),
        (0.01, [1, 1, 1, 1, 3, 3, 3, 5, 5, 5, 5, 5, 5]),  # max(1, round(c * width))
    ],
)
def test_channels_scale_with_width(width, expected):
    with torch.device("meta"):
        model = build_vgg16(3, width=width)
    assert conv_channels(model) == expected
    assert model.classifier[-1].in_features == expected[-1]
    assert model.classifier[-1].out_features == 3


def test_head_is_gap_and_one_dense_layer():
    model = build_vgg16(8, width=SMALL, dropout=0.3)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0] is model.classifier[-1]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.classifier)


@pytest.mark.parametrize(("size", "width"), [(64, SMALL), (32, SMALL), (224, 1 / 16)])
def test_output_shape_is_logits(size, width):
    model = build_vgg16(5, width=width).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))  # (B, 3, H, W) -> (B, num_classes)
    assert out.shape == (2, 5)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # logits, not probabilities


def test_build_rejects_bad_arguments():
    for kwargs in ({"width": 0.0}, {"width": -1.0}, {"dropout": 1.0}, {"num_classes": 0}):
        with pytest.raises(ValueError):
            build_vgg16(**{"num_classes": 3, **kwargs})


def test_registry():
    assert MODELS["vgg16"] is build_vgg16
    assert build_model("vgg16", num_classes=3, width=SMALL).classifier[-1].out_features == 3
    with pytest.raises(ValueError, match="unknown model 'resnet'.*vgg16"):
        build_model("resnet", num_classes=3)


# --- blocks and freezing ---------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True])
def test_conv_blocks(batch_norm):
    model = small_model(batch_norm=batch_norm)
    blocks = conv_blocks(model)
    assert len(blocks) == 5
    assert [sum(isinstance(m, nn.Conv2d) for m in b) for b in blocks] == [2, 2, 3, 3, 3]
    assert all(isinstance(b[-1], nn.MaxPool2d) for b in blocks)
    assert [m for b in blocks for m in b] == list(model.features)


def expected_frozen(k: int) -> set[str]:
    return {f"features.{i}.{p}" for block in CONV_INDICES[:k] for i in block for p in ("weight", "bias")}


@pytest.mark.parametrize("k", range(6))
def test_freeze_blocks_freezes_exactly_first_k(k):
    model = small_model()
    freeze_blocks(model, k)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == expected_frozen(k)
    assert len(frozen) == 2 * sum(len(b) for b in CONV_INDICES[:k])
    assert frozen_block_count(model) == k


def test_freeze_blocks_sets_rather_than_adds():
    model = small_model()
    freeze_blocks(model, 5)
    freeze_blocks(model, 2)
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == expected_frozen(2)


@pytest.mark.parametrize("k", [-1, 6, 2.0, True])
def test_freeze_blocks_rejects_out_of_range(k):
    with pytest.raises(ValueError, match=r"0\.\.5"):
        freeze_blocks(small_model(), k)


def test_optimizer_step_leaves_frozen_weights_bit_identical():
    model = small_model()
    freeze_blocks(model, 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # All parameters handed to the optimizer, with weight decay and momentum: frozen ones must still not move.
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 64, 64, generator=g), torch.randint(0, 8, (4,), generator=g)
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for name, p in model.named_parameters():
        if name in expected_frozen(2):
            assert p.grad is None and torch.equal(p, before[name]), name
        else:
            assert not torch.equal(p, before[name]), name


def test_frozen_batch_norm_stays_in_eval_through_train():
    model = small_model(batch_norm=True)
    freeze_blocks(model, 2)
    model.train()
    blocks = conv_blocks(model)
    bn = [[m for m in b if isinstance(m, nn.BatchNorm2d)] for b in blocks]
    assert all(not m.training for b in bn[:2] for m in b)
    assert all(m.training for b in bn[2:] for m in b)
    frozen_stats = [m.running_mean.clone() for m in bn[0]]
    free_stats = [m.running_mean.clone() for m in bn[2]]
    model(torch.randn(4, 3, 64, 64))
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bn[0], frozen_stats, strict=True))
    assert not any(torch.equal(m.running_mean, s) for m, s in zip(bn[2], free_stats, strict=True))
    # Unfreezing puts the blocks back in the model's mode.
    freeze_blocks(model, 0)
    assert all(m.training for b in bn for m in b)


def test_set_frozen_eval_for_a_plain_torchvision_vgg():
    model = small_model(batch_norm=True)
    freeze_blocks(model, 1)
    nn.Module.train(model)  # bypasses VGG16Net.train, as a plain torchvision VGG would
    assert conv_blocks(model)[0][1].training
    set_frozen_eval(model)
    assert not conv_blocks(model)[0][1].training and conv_blocks(model)[1][1].training


def test_new_head_resets_the_head():
    model = small_model()
    with torch.no_grad():
        model.classifier[-1].weight.fill_(1.0)
        model.classifier[-1].bias.fill_(1.0)
    features = {k: v.clone() for k, v in model.features.state_dict().items()}
    old = model.classifier[-1]
    new_head(model, 2)
    head = model.classifier[-1]
    assert head is not old and head.out_features == 2 and head.in_features == old.in_features
    assert torch.equal(head.bias, torch.zeros(2))
    assert head.weight.abs().max() < 0.1  # fresh N(0, 0.01) init, not the ones
    assert all(torch.equal(v, features[k]) for k, v in model.features.state_dict().items())
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2)


# --- checkpoint weights ----------------------------------------------------------------


def test_load_checkpoint_weights_copies_features_and_skips_head():
    source, target = small_model(8, seed=1), small_model(2, seed=2)
    head_before = target.classifier[-1].weight.clone()
    load_checkpoint_weights(target, source.state_dict())
    src = source.features.state_dict()
    assert all(torch.equal(v, src[k]) for k, v in target.features.state_dict().items())
    assert torch.equal(target.classifier[-1].weight, head_before)


def test_load_checkpoint_weights_with_head():
    source, target = small_model(8, seed=1), small_model(8, seed=2)
    load_checkpoint_weights(target, source.state_dict(), skip_head=False)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())
    with pytest.raises(RuntimeError, match=r"classifier\.2\.weight: \(2, 64\) given vs \(8, 64\)"):
        load_checkpoint_weights(target, small_model(2).state_dict(), skip_head=False)


def test_load_checkpoint_weights_lists_mismatches():
    target = small_model()
    mismatch = r"shape mismatch \[features\.0\.weight: \(16, 3, 3, 3\) given vs \(8, 3, 3, 3\)"
    with pytest.raises(RuntimeError, match=mismatch):
        load_checkpoint_weights(target, build_vgg16(8, width=0.25).state_dict())
    with pytest.raises(RuntimeError, match=r"missing \[features\.2\.weight.*unexpected \[features\.1\.weight"):
        load_checkpoint_weights(target, small_model(batch_norm=True).state_dict())


# --- offline ImageNet weights ----------------------------------------------------------


def cache_name(weights) -> str:
    return os.path.basename(urlparse(weights.url).path)


def test_cache_file_names():
    assert cache_name(VGG16_Weights.IMAGENET1K_V1) == "vgg16-397923af.pth"
    assert cache_name(VGG16_BN_Weights.IMAGENET1K_V1) == "vgg16_bn-6c64b313.pth"


def fake_imagenet_file(path: Path, batch_norm: bool) -> dict[str, torch.Tensor]:
    """Random `features.*` tensors with VGG16's (width 1.0) shapes, saved like torchvision's file."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_vgg16(1, batch_norm=batch_norm).features.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    # The 2017 vgg16_bn file predates num_batches_tracked; leave it out like the real one.
    state = {
        f"features.{k}": torch.rand(s, generator=g) for k, s in shapes.items() if not k.endswith("num_batches_tracked")
    }
    state["classifier.0.weight"] = torch.randn(4, 4)  # stands in for the ImageNet head, which must be ignored
    torch.save(state, path)
    return state


@pytest.mark.parametrize("batch_norm", [False, True])
def test_load_imagenet_features_from_cache(torch_home, no_network, batch_norm):
    weights = VGG16_BN_Weights.IMAGENET1K_V1 if batch_norm else VGG16_Weights.IMAGENET1K_V1
    fake = fake_imagenet_file(torch_home / cache_name(weights), batch_norm)
    model = build_vgg16(8, batch_norm=batch_norm)
    head = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    load_imagenet_features(model)
    loaded = model.features.state_dict()
    for key, tensor in fake.items():
        if key.startswith("features."):
            assert torch.equal(loaded[key.removeprefix("features.")], tensor), key
    assert all(torch.equal(v, head[k]) for k, v in model.classifier.state_dict().items())


@pytest.mark.parametrize("batch_norm", [False, True])
def test_load_imagenet_features_missing_file_is_clear(torch_home, no_network, batch_norm):
    weights = VGG16_BN_Weights.IMAGENET1K_V1 if batch_norm else VGG16_Weights.IMAGENET1K_V1
    with torch.device("meta"):
        model = build_vgg16(8, batch_norm=batch_norm)
    with pytest.raises(FileNotFoundError) as err:
        load_imagenet_features(model)
    message = str(err.value)
    assert str(torch_home / cache_name(weights)) in message
    assert weights.url in message
    assert list(torch_home.iterdir()) == []


def test_load_imagenet_features_rejects_bad_file(torch_home, no_network):
    bad = {
        "features.0.weight": torch.zeros(64, 3, 3, 3),
        "features.0.bias": torch.zeros(3),  # wrong shape
        "features.99.weight": torch.zeros(1),  # not a VGG16 key
    }
    torch.save(bad, torch_home / cache_name(VGG16_Weights.IMAGENET1K_V1))
    with torch.device("meta"):
        model = build_vgg16(8)
    expected = (
        r"vgg16-397923af\.pth.*missing \[features\.2\.weight.*unexpected \[features\.99\.weight\]"
        r".*shape mismatch \[features\.0\.bias: \(3,\) given vs \(64,\) in model\]"
    )
    with pytest.raises(RuntimeError, match=expected):
        load_imagenet_features(model)


def test_load_imagenet_features_needs_width_one(torch_home, no_network):
    with pytest.raises(ValueError, match="width 1.0"):
        load_imagenet_features(small_model())
