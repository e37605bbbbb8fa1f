"""Build a detector from a :class:`ModelSpec`: a name-to-constructor dict, not a framework (DESIGN.md)."""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..ops.priors import generate_priors
from .backbones import BACKBONES, build_backbone
from .detectors import ARCHITECTURES, SingleShotDetector
from .temporal import TemporalRefinementNet, build_temporal
from .spec import ModelSpec, load_model_spec


def _build_backbone(spec: ModelSpec, cfg: dict[str, Any], pretrained: bool | None) -> nn.Module:
    cfg = dict(cfg)
    name = cfg.pop("name")
    if pretrained is not None and name in BACKBONES and "pretrained" in inspect.signature(BACKBONES[name]).parameters:
        cfg["pretrained"] = pretrained
    try:
        return build_backbone(name, **cfg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model '{spec.name}': bad options for backbone '{name}': {exc}") from exc


def build_model(
    spec: ModelSpec | str, num_classes: int, pretrained_backbone: bool | None = None
) -> SingleShotDetector | TemporalRefinementNet:
    """``pretrained_backbone`` overrides the spec's backbone ``pretrained`` flag (a checkpoint load passes
    False: its own weights replace the ImageNet ones anyway, so reading them would be wasted work)."""
    if isinstance(spec, str):
        spec = load_model_spec(spec)
    backbone = _build_backbone(spec, spec.backbone, pretrained_backbone)
    if spec.is_temporal:
        assert spec.reference_backbone is not None
        reference_backbone = _build_backbone(spec, spec.reference_backbone, pretrained_backbone)
        return build_temporal(
            spec.architecture, backbone, reference_backbone, num_classes, spec.anchors.anchors_per_cell, spec.head
        )
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
