"""Feature extractors returning four maps at strides 8, 16, 32 and 64 (see ``base.Backbone``)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .base import Backbone, L2Norm
from .efficientnet import EfficientNetLite0Backbone
from .lite import LiteBackbone
from .vgg import VGG16Backbone

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "vgg16": VGG16Backbone,
    "lite": LiteBackbone,
    "efficientnet_lite0": EfficientNetLite0Backbone,
}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Instantiate the backbone registered as ``name`` with ``kwargs``."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}"
        ) from None
    return factory(**kwargs)


__all__ = [
    "BACKBONES",
    "Backbone",
    "EfficientNetLite0Backbone",
    "L2Norm",
    "LiteBackbone",
    "VGG16Backbone",
    "build_backbone",
]
