"""SE and CBAM attention after VGG conv blocks (Arabian et al. 2022), built from timm's maintained layers.

`add_attention(model, "se" | "cbam")` inserts one module right after the MaxPool2d that ends
each of conv blocks 2, 3 and 4 (1-based), so it reweights that block's output. Squeeze-and-
Excitation (Hu et al. 2018): x * sigmoid(W2 relu(W1 avgpool(x) + b1) + b2). CBAM (Woo et al.
2018): channel gate sigmoid(MLP(avgpool x) + MLP(maxpool x)) with a bias-free shared MLP,
then spatial gate sigmoid(BN(conv7x7([mean_c x, max_c x]))). Both reduce to C // r hidden
channels (r = 16, at least 1), the papers' choice, rather than timm's default rounding to 8.

Call it after loading pretrained weights: the VGG layers keep their objects (and weights),
only `model.features` is rebuilt around them.
"""

from __future__ import annotations

from collections.abc import Sequence

from timm.layers import SEModule
from timm.layers.cbam import CbamModule
from torch import nn

from facetransfer.models.vgg import VGG16Net, conv_blocks

KINDS = ("none", "se", "cbam")
DEFAULT_BLOCKS = (2, 3, 4)


def attention_module(kind: str, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> nn.Module:
    """One SE or CBAM module for a (B, channels, H, W) feature map; output has the same shape."""
    hidden = max(1, channels // reduction)
    if kind == "se":
        return SEModule(channels, rd_channels=hidden)
    if kind == "cbam":
        return CbamModule(channels, rd_channels=hidden, spatial_kernel_size=spatial_kernel)
    raise ValueError(f"attention kind {kind!r}: expected one of {', '.join(KINDS[1:])}")


def _out_channels(block: list[nn.Module]) -> int:
    return [m for m in block if isinstance(m, nn.Conv2d)][-1].out_channels


def add_attention(model: VGG16Net, kind: str, after_blocks: Sequence[int] = DEFAULT_BLOCKS,
                  reduction: int = 16) -> VGG16Net:
    """Insert `kind` attention after each conv block in `after_blocks` (1-based); "none" leaves the model as is."""
    if kind == "none":
        return model
    blocks = conv_blocks(model)
    if any(not 1 <= b <= len(blocks) for b in after_blocks):
        raise ValueError(f"after_blocks {list(after_blocks)}: expected block numbers in 1..{len(blocks)}")
    layers: list[nn.Module] = []
    for number, block in enumerate(blocks, start=1):
        layers += block
        if number in after_blocks:
            layers.append(attention_module(kind, _out_channels(block), reduction))
    model.features = nn.Sequential(*layers)
    return model


def glorot_init(model: nn.Module) -> None:
    """Glorot (Xavier) uniform weights and zero biases for every conv and linear layer (Keras' default init,
    the paper's "from scratch"); batch-norm layers keep weight 1, bias 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
