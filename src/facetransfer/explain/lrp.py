"""Layer-wise relevance propagation with zennit, the rules of Prajod et al. 2022 (section 4.2).

z+ for conv layers and the z rule (epsilon 0) for dense layers: zennit's
`EpsilonPlus(epsilon=0)`. Batch norm is merged into the preceding conv for the
duration of the call (zennit's `SequentialMergeBatchNorm` canonizer), so the rules see
plain convs. The explanation starts from the target class's logit (the other outputs
get no relevance), so for a bias-free network the relevance sums to that logit.
Hooks exist only inside zennit's attributor context: nothing stays attached to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torchvision.models import VGG
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonPlus, SpecialFirstLayerMapComposite, layer_map_base
from zennit.core import BasicHook, Composite
from zennit.rules import ClampMod, Epsilon, ZPlus
from zennit.types import Convolution

from facetransfer.training.data import normalize


class NonNegativeZPlus(BasicHook):
    """zennit's ZPlus for a layer whose inputs are all >= 0 (after ReLU / max-pool), in fewer passes.

    On non-negative inputs ZPlus's negative branch (inputs clamped to <= 0, weights to <= 0)
    is exactly zero, clamping the inputs to >= 0 changes nothing, and the denominator
    z = W+ x + b+ is >= 0, where zennit's stabilizer (z + eps * (sign(z) + [z == 0])) is
    z + eps. Dropping the branch halves the conv work; the clamp and the general stabilizer
    were five passes over each activation, which at 224 px cost more than the convs on a GPU.
    The relevance is the same bit for bit where the conv sums its non-negative terms directly, as
    on the CPU (tested against ZPlus and the float64 reference); a GPU conv algorithm that
    subtracts (Winograd) can leave z slightly below 0, where this divides by z + eps, not z - eps.
    """

    def __init__(self, stabilizer: float = 1e-6):
        super().__init__(
            input_modifiers=[lambda input: input],
            param_modifiers=[ClampMod(min=0.0)],
            output_modifiers=[lambda output: output],
            gradient_mapper=lambda out_grad, outputs: [out_grad / (outputs[0] + stabilizer)],
            reducer=lambda inputs, gradients: inputs[0] * gradients[0],
        )


def paper_composite(model: nn.Module) -> Composite:
    """The paper's rules: EpsilonPlus(epsilon=0), with the batch-norm canonizer when the model has batch norm.

    For torchvision VGGs, whose convs after the first all read ReLU / max-pool outputs,
    the same rules as a SpecialFirstLayerMapComposite: ZPlus on the first conv (pixels can
    be negative), NonNegativeZPlus on the others. Any other model gets EpsilonPlus itself.
    """
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    canonizers = [SequentialMergeBatchNorm()] if has_bn else None
    if not isinstance(model, VGG):
        return EpsilonPlus(epsilon=0.0, canonizers=canonizers)
    return first_conv_zplus_composite(canonizers)


def first_conv_zplus_composite(canonizers: list | None = None) -> SpecialFirstLayerMapComposite:
    """EpsilonPlus(epsilon=0)'s rules for nets whose convs after the first read only non-negative inputs."""
    layer_map = layer_map_base() + [(Convolution, NonNegativeZPlus()), (nn.Linear, Epsilon(epsilon=0.0))]
    return SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=[(Convolution, ZPlus())], canonizers=canonizers)


@contextmanager
def lrp_session(model: nn.Module) -> Iterator[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Hooks and the merged batch norm for the duration of the block; yields `explain(images, targets)`.

    Explaining many batches in one session registers the rules once (about 25 % faster
    per batch than a session per call, `bench/lrp_throughput.py`). The model is put in
    eval mode; on exit zennit removes every hook and restores the batch-norm parameters.
    """
    model.eval()
    with Gradient(model=model, composite=paper_composite(model)) as attributor:

        def explain(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            if images.ndim != 4 or targets.shape != (images.shape[0],):
                raise ValueError(f"images must be (N, C, H, W) and targets (N,), got {tuple(images.shape)} and "
                                 f"{tuple(targets.shape)}")
            def target_logit(output: torch.Tensor) -> torch.Tensor:  # (N, classes): the target's logit, 0 elsewhere
                return output * nn.functional.one_hot(targets.to(output.device), output.shape[1]).to(output.dtype)

            _, relevance = attributor(images.detach().clone().requires_grad_(True), target_logit)
            return relevance.sum(dim=1).detach()  # (N, H, W)

        yield explain


def lrp_relevance(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pixel relevance (N, H, W) of `targets` (N,) for model-ready inputs (N, C, H, W), summed over channels.

    One backward pass explains the whole batch: each sample's output relevance is its
    own target logit. The model is left in eval mode, with no hooks attached.
    """
    with lrp_session(model) as explain:
        return explain(images, targets)


def explain_images(model: nn.Module, images: np.ndarray, targets: np.ndarray, batch_size: int = 64,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """LRP maps (N, H, W) float32 of uint8 images (N, H, W, 3), normalised as in training, in batches.

    Memory is bounded by `batch_size` however many images there are (plus the maps returned).
    The inputs are channels_last already (permuted from (N, H, W, 3)); on CUDA the model is moved
    to channels_last too (in place), as in training: VGG16 at 224 px on an H200, 1,027 images/s
    against 835 with both contiguous (bench/gpu_paper_profile.py). The CPU keeps the model as it
    is: its maps stay the bytes they were.
    """
    device = torch.device(device)
    model = model.to(device, memory_format=torch.channels_last) if device.type == "cuda" else model.to(device)
    out = np.empty(images.shape[:3], dtype=np.float32)
    with lrp_session(model) as explain:
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            x = normalize(batch.permute(0, 3, 1, 2))  # (B, 3, H, W), channels_last strides
            t = torch.tensor(np.asarray(targets[start:start + batch_size]), dtype=torch.int64, device=device)
            out[start:start + len(batch)] = explain(x, t).float().cpu().numpy()
    return out


def normalise_maps(relevance: np.ndarray) -> np.ndarray:
    """Each map (..., H, W) divided by its largest value and clipped to [0, 1] (the paper's display scale).

    1 marks the most relevant pixel; negative relevance (evidence against the class) maps
    to 0. A map with no positive relevance becomes all zeros.
    """
    r = np.asarray(relevance, dtype=np.float64)
    peak = r.max(axis=(-2, -1), keepdims=True)
    scaled = np.divide(r, peak, out=np.zeros_like(r), where=peak > 0)
    return np.clip(scaled, 0.0, 1.0)


def difference_maps(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Raw reference minus other relevance (..., H, W), min-max scaled to [0, 1] per map for display.

    As in the paper's Fig. 4: bright where the reference put more relevance. A constant
    difference map becomes all 0.5.
    """
    d = np.asarray(reference, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    lo = d.min(axis=(-2, -1), keepdims=True)
    span = d.max(axis=(-2, -1), keepdims=True) - lo
    return np.divide(d - lo, span, out=np.full_like(d, 0.5), where=span > 0)
