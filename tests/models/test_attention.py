"""SE and CBAM (timm layers) checked against the papers' equations; insertion into VGG; Glorot init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from facetransfer.models.attention import add_attention, attention_module, glorot_init
from facetransfer.models.vgg import build_vgg16, conv_blocks


def _randomise(module: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.5)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator, dtype=b.dtype) + 0.5)


def test_se_matches_hu_et_al_equation_in_float64():
    se = attention_module("se", 32).double().eval()
    _randomise(se)
    x = torch.randn(3, 32, 5, 4, dtype=torch.float64)
    w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias  # (2, 32), (2,)
    w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias  # (32, 2), (32,)
    z = x.mean(dim=(2, 3))  # squeeze: (3, 32)
    gate = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)  # excitation: (3, 32)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_cbam_matches_woo_et_al_equations_in_float64():
    cbam = attention_module("cbam", 32, spatial_kernel=7).double().eval()
    _randomise(cbam, seed=1)
    x = torch.randn(2, 32, 6, 6, dtype=torch.float64)
    w1, w2 = cbam.channel.fc1.weight[:, :, 0, 0], cbam.channel.fc2.weight[:, :, 0, 0]  # bias-free shared MLP

    def mlp(v):
        return torch.relu(v @ w1.T) @ w2.T

    channel = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))  # M_c: (2, 32)
    xc = x * channel[:, :, None, None]
    pooled = torch.cat([xc.mean(dim=1, keepdim=True), xc.amax(dim=1, keepdim=True)], dim=1)  # (2, 2, 6, 6)
    conv = nn.functional.conv2d(pooled, cbam.spatial.conv.conv.weight, padding=3)
    bn = cbam.spatial.conv.bn
    spatial = torch.sigmoid((conv - bn.running_mean[0]) / torch.sqrt(bn.running_var[0] + bn.eps) * bn.weight[0]
                            + bn.bias[0])
    torch.testing.assert_close(cbam(x), xc * spatial)


@pytest.mark.parametrize("channels, reduction", [(64, 16), (32, 16), (8, 16)])
def test_parameter_counts_follow_the_papers(channels, reduction):
    hidden = max(1, channels // reduction)
    se = attention_module("se", channels, reduction)
    cbam = attention_module("cbam", channels, reduction)
    assert sum(p.numel() for p in se.parameters()) == 2 * channels * hidden + hidden + channels
    assert sum(p.numel() for p in cbam.parameters()) == 2 * channels * hidden + 2 * 7 * 7 + 2  # + BN(1) affine


@pytest.mark.parametrize("kind", ["se", "cbam"])
def test_vgg_with_attention_after_blocks_2_3_4(kind):
    torch.manual_seed(0)
    base = build_vgg16(6, width=0.125, batch_norm=True)
    vgg_layers = list(base.features)
    weights = [m.weight.clone() for m in vgg_layers if isinstance(m, nn.Conv2d)]
    model = add_attention(base, kind)
    inserted = [m for m in model.features if not isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.ReLU | nn.MaxPool2d)]
    assert len(inserted) == 3
    # each sits right after the MaxPool2d ending block 2, 3, 4, sized to that block's channels (width 0.125)
    pools = [i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
    assert [type(model.features[pools[b] + 1]) for b in (1, 2, 3)] == [type(inserted[0])] * 3
    squeeze = [inserted[i].fc1 if kind == "se" else inserted[i].channel.fc1 for i in range(3)]
    assert [fc1.in_channels for fc1 in squeeze] == [16, 32, 64]
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 6)
    assert [m for m in model.features if m in vgg_layers] == vgg_layers  # same layer objects, same order
    after = [m.weight for m in model.features if isinstance(m, nn.Conv2d) and m in vgg_layers]
    assert all(torch.equal(a, b) for a, b in zip(after, weights, strict=True))  # loaded weights survive insertion
    assert len(conv_blocks(model)) == 5


def test_none_leaves_the_model_and_bad_input_is_named():
    model = build_vgg16(6, width=0.125)
    assert add_attention(model, "none") is model and len(model.features) == 31
    with pytest.raises(ValueError, match="attention kind 'eca'"):
        attention_module("eca", 8)
    with pytest.raises(ValueError, match="after_blocks"):
        add_attention(build_vgg16(6, width=0.125), "se", after_blocks=(0, 6))


def test_glorot_init_bounds_and_zero_bias():
    model = add_attention(build_vgg16(6, width=0.125), "se")
    glorot_init(model)
    conv = model.features[0]
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.5 * bound
    assert all(m.bias.abs().sum() == 0 for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None)
