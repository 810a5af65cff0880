"""Models chosen by name: `build_model("vgg16", num_classes=8, width=0.25)`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from facetransfer.models.vgg import build_vgg16

MODELS: dict[str, Callable[..., nn.Module]] = {"vgg16": build_vgg16}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as `name` with the builder's keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "build_model"]
