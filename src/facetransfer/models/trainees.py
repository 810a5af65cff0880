"""The masking study's trainee architectures (Schiller et al. 2020, section 5.5): from torchvision, from scratch.

The trainee must differ from the trainer (the VGG16 emotion model) to show a model-agnostic transfer.
The paper used MobileNetV2; at the benchmark's 64 px and 3,821 training faces a from-scratch
MobileNetV2 stayed at the class prior for 10-20 epochs under every recipe tried (docs/masking.md, "The
trainees"), while a ResNet-10 (torchvision's ResNet with one BasicBlock per stage) reached
validation macro F1 ~0.45 in 10 epochs with the paper's Adam lr 0.001, so ResNet-10 is the default.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import mobilenet_v2, resnet18
from torchvision.models.resnet import BasicBlock, ResNet


def build_resnet10(num_classes: int, width: float = 1.0) -> nn.Module:
    """torchvision ResNet with one BasicBlock per stage (channels 64-512; 4.9 M parameters at 8 classes),
    random init."""
    _no_width("resnet10", width)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)


def build_resnet18(num_classes: int, width: float = 1.0) -> nn.Module:
    """torchvision ResNet-18, random init (2.5x the time of ResNet-10 per epoch at 64 px on the CPU)."""
    _no_width("resnet18", width)
    return resnet18(num_classes=num_classes)


def build_mobilenet_v2(num_classes: int, width: float = 1.0) -> nn.Module:
    """torchvision MobileNetV2 with `width_mult` = width, random init (the paper's trainee)."""
    return mobilenet_v2(num_classes=num_classes, width_mult=width)


def _no_width(name: str, width: float) -> None:
    if width != 1.0:
        raise ValueError(f"{name} takes no width multiplier (got width {width}); only mobilenet_v2 does")


# A registry of its own beside models.MODELS (the VGG16 family): the VGG stages import that one, and a
# trainee change should not make DVC rerun them.
TRAINEES: dict[str, Callable[..., nn.Module]] = {"resnet10": build_resnet10, "resnet18": build_resnet18,
                                                 "mobilenet_v2": build_mobilenet_v2}


def build_trainee(name: str, num_classes: int, width: float = 1.0) -> nn.Module:
    """The trainee registered as `name`, randomly initialised."""
    if name not in TRAINEES:
        raise ValueError(f"unknown trainee {name!r}; choose one of: {', '.join(TRAINEES)}")
    return TRAINEES[name](num_classes=num_classes, width=width)
