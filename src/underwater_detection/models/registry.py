"""Build a detector from a :class:`ModelSpec`: a name-to-constructor dict, not a framework (DESIGN.md)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ops.priors import generate_priors
from .backbones import build_backbone
from .detectors import ARCHITECTURES, SingleShotDetector
from .spec import ModelSpec, load_model_spec


def build_model(spec: ModelSpec | str, num_classes: int, pretrained_backbone: bool | None = None) -> SingleShotDetector:
    """``pretrained_backbone`` overrides the spec's backbone ``pretrained`` flag (a checkpoint load passes
    False: its own weights replace the ImageNet ones anyway, so reading them would be wasted work)."""
    if isinstance(spec, str):
        spec = load_model_spec(spec)
    backbone_cfg: dict[str, Any] = dict(spec.backbone)
    name = backbone_cfg.pop("name")
    if pretrained_backbone is not None and "pretrained" in backbone_cfg:
        backbone_cfg["pretrained"] = pretrained_backbone
    try:
        backbone = build_backbone(name, **backbone_cfg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model '{spec.name}': bad options for backbone '{name}': {exc}") from exc
    try:
        return ARCHITECTURES[spec.architecture](
            backbone, num_classes, anchors_per_cell=spec.anchors.anchors_per_cell, **spec.head
        )
    except TypeError as exc:
        raise ValueError(f"model '{spec.name}': bad head options {spec.head}: {exc}") from exc


def preprocess_config(spec: ModelSpec, model: nn.Module) -> dict[str, Any]:
    """The normalisation a model expects: the spec's if it sets one, else the backbone's own default."""
    if spec.preprocess is not None:
        return dict(spec.preprocess)
    backbone = getattr(model, "backbone", None)
    default = getattr(backbone, "default_preprocess", None)
    if default is None:
        raise ValueError(f"model '{spec.name}' has no preprocess config and its backbone no default")
    return dict(default)


def priors_for(spec: ModelSpec, device: torch.device | str | None = None) -> torch.Tensor:
    return generate_priors(*spec.input_size, spec.anchors, device=device)
