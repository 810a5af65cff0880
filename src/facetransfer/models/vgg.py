"""VGG16 from torchvision's own classes, with a width multiplier, a small head and block freezing.

The conv stack is `torchvision.models.vgg.make_layers(cfgs["D"])` with every channel
count scaled by `width`, so at width 1.0 the `features.N.*` state-dict keys are exactly
those of torchvision's ImageNet checkpoints. The head follows Prajod et al. 2022 (a
Keras VGG16 base "connected to a dense layer with softmax"): global average pooling and
one Linear layer that returns logits; softmax lives in the loss and at prediction.

Blocks: VGG16 has 5 conv blocks, each ending at a MaxPool2d in `features`. FreezeBk
(paper) is `freeze_blocks(model, k)`: the first k blocks get requires_grad=False and,
with batch norm, stay in eval mode through `model.train()` (see `VGG16Net.train`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models.vgg import VGG, VGG16_BN_Weights, VGG16_Weights, cfgs, make_layers

NUM_BLOCKS = 5


class VGG16Net(VGG):
    """torchvision `VGG` with a global-average-pool + one-dense head; forward returns logits (B, num_classes).

    `width` and `batch_norm` are kept as attributes so loaders can check compatibility.
    """

    def __init__(self, num_classes: int, width: float = 1.0, batch_norm: bool = False, dropout: float = 0.0):
        cfg = scaled_cfg(width)
        features = make_layers(cfg, batch_norm=batch_norm)
        # torchvision's __init__ builds (and initialises) the stock 4096-wide classifier,
        # ~120M parameters we replace right below; building it on the meta device costs
        # nothing. `features` already exists on the CPU and gets torchvision's own init.
        with torch.device("meta"):
            super().__init__(features, num_classes=num_classes, init_weights=True, dropout=dropout)
        self.width = width
        self.batch_norm = batch_norm
        c_last = next(c for c in reversed(cfg) if c != "M")
        # One dense layer as in the paper. GAP instead of flatten so the head does not
        # depend on the input size (64x64 default, 224x224 paper) and stays small.
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # (B, C_last, h, w) -> (B, C_last, 1, 1)
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, C_last)
            nn.Dropout(dropout),
            nn.Linear(c_last, num_classes),  # (B, num_classes) logits
        )
        _init_linear(self.classifier[-1])

    def train(self, mode: bool = True) -> VGG16Net:
        """Like nn.Module.train, but frozen blocks stay in eval mode (batch-norm statistics stay fixed)."""
        super().train(mode)
        if mode:
            set_frozen_eval(self)
        return self


def scaled_cfg(width: float) -> list[str | int]:
    """torchvision's VGG16 configuration "D" with channels max(1, round(c * width)); "M" (max-pool) kept."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    return [v if v == "M" else max(1, round(int(v) * width)) for v in cfgs["D"]]


def build_vgg16(num_classes: int, width: float = 1.0, batch_norm: bool = False, dropout: float = 0.0) -> VGG16Net:
    """VGG16 (torchvision layout) scaled by `width`, GAP + one Linear head returning logits.

    Works for any input size >= 32x32 (five 2x2 max-pools).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return VGG16Net(num_classes, width=width, batch_norm=batch_norm, dropout=dropout)


def _init_linear(linear: nn.Linear) -> None:
    # torchvision's VGG init for Linear layers.
    nn.init.normal_(linear.weight, 0, 0.01)
    nn.init.constant_(linear.bias, 0)


# --- blocks and freezing -------------------------------------------------------------


def conv_blocks(model: VGG) -> list[list[nn.Module]]:
    """The 5 conv blocks of `model.features` in order; each list ends with its MaxPool2d."""
    blocks: list[list[nn.Module]] = [[]]
    for module in model.features:
        blocks[-1].append(module)
        if isinstance(module, nn.MaxPool2d):
            blocks.append([])
    blocks.pop()  # the empty list opened after the last max-pool
    if len(blocks) != NUM_BLOCKS or any(not isinstance(b[-1], nn.MaxPool2d) for b in blocks):
        raise ValueError(f"expected {NUM_BLOCKS} conv blocks ending in MaxPool2d, found {len(blocks)}")
    return blocks


def _block_params(block: list[nn.Module]) -> list[nn.Parameter]:
    return [p for module in block for p in module.parameters()]


def freeze_blocks(model: VGG, k: int) -> None:
    """Freeze the first k conv blocks (paper's FreezeBk, k in 0..5) and unfreeze the others.

    Frozen parameters get requires_grad=False, so optimizers skip them (their .grad stays
    None). Blocks k..4 are made trainable again, so the call sets the state rather than
    adding to it; the head is left as it is. Batch-norm layers of frozen blocks are put in
    eval mode now and, for VGG16Net, by every later `model.train()`; for another VGG call
    `set_frozen_eval(model)` after `model.train()`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= NUM_BLOCKS:
        raise ValueError(f"k (number of frozen conv blocks) must be an int in 0..{NUM_BLOCKS}, got {k!r}")
    for i, block in enumerate(conv_blocks(model)):
        for p in _block_params(block):
            p.requires_grad_(i >= k)
    # Leave blocks >= k in whatever mode the model is in, and the frozen ones in eval.
    model.train(model.training)
    set_frozen_eval(model)


def frozen_block_count(model: VGG) -> int:
    """How many leading conv blocks have all their parameters frozen (0..5)."""
    count = 0
    for block in conv_blocks(model):
        if any(p.requires_grad for p in _block_params(block)):
            break
        count += 1
    return count


def set_frozen_eval(model: VGG) -> None:
    """Put the modules of the frozen leading blocks in eval mode (batch norm then uses and keeps its running stats)."""
    for block in conv_blocks(model)[: frozen_block_count(model)]:
        for module in block:
            module.eval()


def new_head(model: VGG16Net, num_classes: int) -> None:
    """Replace the final Linear with a freshly initialised one with `num_classes` outputs (same device/dtype)."""
    old = model.classifier[-1]
    if not isinstance(old, nn.Linear):
        raise TypeError(f"expected the classifier to end with nn.Linear, found {type(old).__name__}")
    head = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
    _init_linear(head)
    model.classifier[-1] = head


# --- weights -------------------------------------------------------------------------


def imagenet_weights(batch_norm: bool) -> VGG16_Weights | VGG16_BN_Weights:
    """torchvision's ImageNet weights entry matching the batch-norm choice."""
    return VGG16_BN_Weights.IMAGENET1K_V1 if batch_norm else VGG16_Weights.IMAGENET1K_V1


def imagenet_cache_path(batch_norm: bool) -> Path:
    """Where torch.hub looks for the ImageNet file: $TORCH_HOME/hub/checkpoints/<file name of the URL>."""
    url = imagenet_weights(batch_norm).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_imagenet_features(model: VGG16Net) -> None:
    """Load ONLY the conv (`features.*`) weights of torchvision's ImageNet VGG16 (-BN) from the local torch cache.

    Never downloads: raises FileNotFoundError naming the expected file when it is not
    cached. Needs width 1.0. The head is left as it is.
    """
    if model.width != 1.0:
        raise ValueError(f"ImageNet initialisation needs width 1.0 (the file's channel counts), got {model.width}")
    weights = imagenet_weights(model.batch_norm)
    path = imagenet_cache_path(model.batch_norm)
    # Checked here, before torch.hub gets the chance to start a download.
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights not found: expected {path} (torch cache, $TORCH_HOME/hub/checkpoints). "
            f"There is no download here: on a machine with internet get {weights.url} "
            f"and copy the file to that path, or set TORCH_HOME to the folder holding hub/checkpoints/{path.name}."
        )
    state = weights.get_state_dict(model_dir=str(path.parent), map_location="cpu", progress=False, check_hash=False)
    # The file also holds the 4096-wide ImageNet classifier; only features.* is used.
    source = {k: v for k, v in state.items() if k.startswith("features.")}
    target = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    # Checkpoints saved before PyTorch 0.4.1 (vgg16_bn's) lack num_batches_tracked; BN then keeps its own.
    problems = _state_dict_problems(target, source, optional_suffix="num_batches_tracked")
    if problems:
        raise RuntimeError(f"{path} does not match VGG16 features (batch_norm={model.batch_norm}): {problems}")
    model.load_state_dict(source, strict=False)


def load_checkpoint_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], skip_head: bool = True) -> None:
    """Copy weights from another of our models' state dict into `model`.

    With skip_head (default) the `classifier.*` entries are ignored on both sides (a new
    head for another task); otherwise they are copied too. Every other model key must be
    in `state_dict` with the same shape and vice versa; else a RuntimeError lists them.
    """
    def keep(key: str) -> bool:
        return not (skip_head and key.startswith("classifier."))

    target = {k: v for k, v in model.state_dict().items() if keep(k)}
    source = {k: v for k, v in state_dict.items() if keep(k)}
    problems = _state_dict_problems(target, source)
    if problems:
        raise RuntimeError(f"state dict does not match the model: {problems}")
    model.load_state_dict(source, strict=False)


def _state_dict_problems(
    target: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor], optional_suffix: str | None = None
) -> str:
    """'' when `source` fits `target` key for key and shape for shape, else a readable list of what does not."""
    missing = [k for k in target if k not in source and not (optional_suffix and k.endswith(optional_suffix))]
    unexpected = [k for k in source if k not in target]
    shapes = [
        f"{k}: {tuple(source[k].shape)} given vs {tuple(target[k].shape)} in model"
        for k in target
        if k in source and source[k].shape != target[k].shape
    ]
    found = {"missing": missing, "unexpected": unexpected, "shape mismatch": shapes}
    return "; ".join(f"{name} {_short(keys)}" for name, keys in found.items() if keys)


def _short(items: list[str], limit: int = 10) -> str:
    more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more
