"""LRP: the batched code equals zennit called per sample, conserves relevance, and matches a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import EpsilonPlus, SpecialFirstLayerMapComposite, layer_map_base
from zennit.rules import Epsilon, ZPlus
from zennit.types import Convolution

from facetransfer.config import ModelSpec
from facetransfer.explain import (
    difference_maps,
    explain_images,
    lrp_relevance,
    normalise_maps,
)
from facetransfer.explain.lrp import first_conv_zplus_composite
from facetransfer.training.recipes import build

STAB = 1e-6  # zennit's default stabiliser of the z+ and norm rules (the z rule gets epsilon 0)


def tiny_net(bias: bool) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, bias=bias),
    ).double()


def _stab(z):
    return z + (np.sign(z) + (z == 0)) * STAB


def _conv_zplus(x, w, b, r_out):
    """Slow z+ rule of a 3x3 'same' conv, zennit's form (alpha 1, beta 0, negative inputs allowed):
    z_j = sum_i x+_i w+_ij + x-_i w-_ij + b+_j ; R_i = sum_j (x+_i w+_ij + x-_i w-_ij) / z_j R_j."""
    c_in, h, wd = x.shape
    c_out = w.shape[0]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    r_in = np.zeros_like(xp)
    for o in range(c_out):
        for i in range(h):
            for j in range(wd):
                patch = xp[:, i:i + 3, j:j + 3]
                contrib = np.maximum(patch, 0) * np.maximum(w[o], 0) + np.minimum(patch, 0) * np.minimum(w[o], 0)
                z = contrib.sum() + max(b[o], 0.0)
                r_in[:, i:i + 3, j:j + 3] += contrib / _stab(z) * r_out[o, i, j]
    return r_in[:, 1:-1, 1:-1]


def _reference_lrp(net: nn.Sequential, x: np.ndarray, target: int) -> np.ndarray:
    """Float64 LRP of one sample (C, H, W) through `tiny_net`, written out layer by layer."""
    conv1, conv2, linear = net[0], net[3], net[7]
    w1, w2 = conv1.weight.detach().numpy(), conv2.weight.detach().numpy()
    b1 = conv1.bias.detach().numpy() if conv1.bias is not None else np.zeros(w1.shape[0])
    b2 = conv2.bias.detach().numpy() if conv2.bias is not None else np.zeros(w2.shape[0])
    wl = linear.weight.detach().numpy()
    bl = linear.bias.detach().numpy() if linear.bias is not None else np.zeros(wl.shape[0])
    with torch.no_grad():
        t = torch.from_numpy(x)[None]
        a1 = net[1](net[0](t))[0].numpy()  # (3, 6, 6) after ReLU
        p1 = net[2](torch.from_numpy(a1)[None])[0].numpy()  # (3, 3, 3)
        a2 = net[4](net[3](torch.from_numpy(p1)[None]))[0].numpy()  # (4, 3, 3)
    g = a2.mean(axis=(1, 2))  # (4,)
    logits = wl @ g + bl
    # z rule (epsilon 0) at the dense layer, starting from the target logit.
    r_g = g * wl[target] * (logits[target] / logits[target])
    # norm rule of the average pool: R_i = a_i / n / (sum a / n + stab) R.
    n = a2.shape[1] * a2.shape[2]
    r_a2 = (a2 / n) / _stab(g)[:, None, None] * r_g[:, None, None]
    r_p1 = _conv_zplus(p1, w2, b2, r_a2)  # ReLU passes relevance through unchanged
    r_a1 = np.zeros_like(a1)  # max-pool: all relevance to the winning input (its gradient)
    for c in range(3):
        for i in range(3):
            for j in range(3):
                block = a1[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                di, dj = np.unravel_index(np.argmax(block), (2, 2))
                r_a1[c, 2 * i + di, 2 * j + dj] += r_p1[c, i, j]
    return _conv_zplus(x, w1, b1, r_a1).sum(axis=0)  # (H, W)


@pytest.mark.parametrize("bias", [False, True])
def test_batched_lrp_matches_a_float64_reference(bias):
    net = tiny_net(bias)
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 1])
    ours = lrp_relevance(net, x, targets).numpy()
    for n in range(4):
        expected = _reference_lrp(net, x[n].numpy(), int(targets[n]))
        np.testing.assert_allclose(ours[n], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_first_conv_zplus_composite_matches_the_float64_reference(bias):
    # The VGG fast path (NonNegativeZPlus after the first conv) on the same tiny net: conv2 reads
    # max-pooled ReLU outputs, as every VGG conv after the first does.
    net = tiny_net(bias)
    x = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    targets = torch.tensor([1, 0, 2])
    with Gradient(model=net, composite=first_conv_zplus_composite()) as attributor:
        _, relevance = attributor(x.clone().requires_grad_(True),
                                  lambda y: y * torch.nn.functional.one_hot(targets, 3).to(y.dtype))
    for n in range(3):
        expected = _reference_lrp(net, x[n].numpy(), int(targets[n]))
        np.testing.assert_allclose(relevance.sum(1)[n].numpy(), expected, rtol=1e-9, atol=1e-12)


def test_vgg_fast_path_equals_zennits_zplus_bit_for_bit():
    # NonNegativeZPlus drops ZPlus's zero branch, its input clamp and its general stabilizer: on the
    # non-negative inputs of every VGG conv after the first, the relevance must not change at all.
    torch.manual_seed(0)
    model = build(ModelSpec(width=0.0625, batch_norm=False), 8).eval()
    with torch.no_grad():  # biases of both signs, as batch norm merged into a conv leaves them
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.uniform_(-0.1, 0.1)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    targets = torch.tensor([7, 0, 3, 3])

    def relevance(composite):
        with Gradient(model=model, composite=composite) as attributor:
            _, rel = attributor(x.clone().requires_grad_(True),
                                lambda y: y * torch.nn.functional.one_hot(targets, 8).to(y.dtype))
        return rel

    zplus = SpecialFirstLayerMapComposite(
        layer_map=layer_map_base() + [(Convolution, ZPlus()), (nn.Linear, Epsilon(0.0))],
        first_map=[(Convolution, ZPlus())])
    assert torch.equal(relevance(first_conv_zplus_composite()), relevance(zplus))


def test_relevance_is_conserved_for_a_bias_free_net():
    net = tiny_net(bias=False)
    x = torch.randn(5, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    targets = torch.tensor([2, 0, 1, 1, 0])
    logits = net(x).detach()[torch.arange(5), targets]
    relevance = lrp_relevance(net, x, targets)
    np.testing.assert_allclose(relevance.sum(dim=(1, 2)).numpy(), logits.numpy(), rtol=1e-4)


def test_batched_equals_zennit_called_per_sample_on_the_vgg():
    torch.manual_seed(0)
    model = build(ModelSpec(width=0.0625), 8).eval()
    with torch.no_grad():  # give batch norm non-trivial statistics so the canonizer matters
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    targets = torch.tensor([7, 0, 3])
    batched = lrp_relevance(model, x, targets)
    from zennit.canonizers import SequentialMergeBatchNorm

    for n in range(3):
        composite = EpsilonPlus(epsilon=0.0, canonizers=[SequentialMergeBatchNorm()])
        with Gradient(model=model, composite=composite) as attributor:
            out, rel = attributor(x[n:n + 1].clone().requires_grad_(True),
                                  lambda y, t=int(targets[n]): y * torch.eye(8)[[t]])
        torch.testing.assert_close(batched[n], rel.sum(1)[0], rtol=1e-4, atol=1e-6)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())  # nothing left behind
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_explain_images_batches_do_not_change_the_maps():
    torch.manual_seed(0)
    model = build(ModelSpec(width=0.0625), 8)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    targets = np.array([1, 2, 3, 4, 5])
    np.testing.assert_allclose(explain_images(model, images, targets, batch_size=2),
                               explain_images(model, images, targets, batch_size=5), rtol=1e-4, atol=1e-7)


def test_normalise_and_difference_maps():
    r = np.array([[[-1.0, 0.0], [1.0, 4.0]], [[-1.0, -2.0], [0.0, 0.0]]])
    np.testing.assert_allclose(normalise_maps(r), [[[0, 0], [0.25, 1.0]], [[0, 0], [0, 0]]])
    # difference [1, 2] -> min-max scaled [0, 1]
    np.testing.assert_allclose(difference_maps(np.array([[[1.0, 3.0]]]), np.array([[[0.0, 1.0]]])), [[[0.0, 1.0]]])
    np.testing.assert_allclose(difference_maps(np.ones((1, 2, 2)), np.zeros((1, 2, 2))), 0.5)
