"""The static single-shot detectors: SSD4s (baseline), RefineDet and DRNet (TDRNet paper, Fig. 3a).

* SSD4s: backbone features -> conv heads. One-step regression from hand-made anchors.
* RefineDet: ARM heads on backbone features (objectness + anchor offsets ``ar``), transfer connection blocks
  (top-down), ODM conv heads on the TCB features predicting offsets against the refined anchors.
  Negative anchor filtering (theta 0.99) is on by default, switchable.
* DRNet: RefineDet's ARM and TCBs, plus anchor-offset detection: the ODM head is a (multi-)deformable conv
  whose sampling offsets are a learned 1x1 mapping of ``ar`` (Eq. 3-5). No negative anchor filtering by
  default (the paper drops it: hard negative mining has a similar effect), but it stays switchable. Without
  NAF the ARM has no objectness head at all: DRNet's loss (III-D) has no ARM confidence term, and a head
  nobody reads would only pull the backbone towards a task it is not used for. ``ar`` is not detached on
  its way into the offset predictor: the paper trains end to end and does not say otherwise.

All return :class:`~underwater_detection.ops.outputs.HeadOutputs`; the loss, decoding and NMS are shared.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ops.outputs import HeadOutputs, flatten_levels
from ..ops.priors import check_input_size
from .heads import ConvPredictor, DeformablePredictor, FeatureOffsetPredictor
from .necks import TransferConnectionNeck

_NAF_DEFAULT = 0.99


def _check_head_keys(architecture: str, head: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(head) - allowed
    if unknown:
        raise ValueError(f"{architecture}: unknown head options {sorted(unknown)}; allowed: {sorted(allowed)}")


class SingleShotDetector(nn.Module):
    """Shared plumbing: backbone, class count, anchor count, input validation."""

    def __init__(self, backbone: nn.Module, num_classes: int, anchors_per_cell: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (foreground classes), got {num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.anchors_per_cell = anchors_per_cell
        self.naf_threshold: float | None = None

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
        check_input_size(int(x.shape[2]), int(x.shape[3]))
        return list(self.backbone(x))


class SSD4s(SingleShotDetector):
    def __init__(self, backbone: nn.Module, num_classes: int, anchors_per_cell: int = 3, **head: Any) -> None:
        _check_head_keys("ssd4s", head, set())
        super().__init__(backbone, num_classes, anchors_per_cell)
        channels = backbone.out_channels
        self.loc_head = ConvPredictor(channels, anchors_per_cell, 4)
        self.conf_head = ConvPredictor(channels, anchors_per_cell, num_classes + 1)

    def forward(self, x: torch.Tensor) -> HeadOutputs:
        feats = self._features(x)
        return HeadOutputs(
            loc=flatten_levels(self.loc_head(feats), 4),
            conf=flatten_levels(self.conf_head(feats), self.num_classes + 1),
        )


class AnchorRefinementModule(nn.Module):
    """ARM heads: per-level anchor offsets ``ar`` (kept as maps, DRNet needs them spatially) and objectness."""

    def __init__(self, in_channels: tuple[int, ...], anchors_per_cell: int, objectness: bool = True) -> None:
        super().__init__()
        self.loc = ConvPredictor(in_channels, anchors_per_cell, 4)
        self.conf = ConvPredictor(in_channels, anchors_per_cell, 2) if objectness else None

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        return self.loc(feats), (self.conf(feats) if self.conf is not None else None)


class _TwoStepDetector(SingleShotDetector):
    """ARM on the backbone features, TCBs to the ODM features, then a subclass's ODM head."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        anchors_per_cell: int,
        channels: int,
        batch_norm: bool,
        naf_threshold: float | None,
        objectness: bool,
    ) -> None:
        super().__init__(backbone, num_classes, anchors_per_cell)
        self.naf_threshold = naf_threshold
        self.arm = AnchorRefinementModule(backbone.out_channels, anchors_per_cell, objectness)
        self.tcb = TransferConnectionNeck(backbone.out_channels, channels, batch_norm)

    def _odm(self, odm_feats: list[torch.Tensor], arm_loc: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> HeadOutputs:
        feats = self._features(x)
        arm_loc, arm_conf = self.arm(feats)
        odm_loc, odm_conf = self._odm(self.tcb(feats), arm_loc)
        return HeadOutputs(
            loc=flatten_levels(odm_loc, 4),
            conf=flatten_levels(odm_conf, self.num_classes + 1),
            arm_loc=flatten_levels(arm_loc, 4),
            arm_conf=None if arm_conf is None else flatten_levels(arm_conf, 2),
        )


class RefineDet(_TwoStepDetector):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        anchors_per_cell: int = 3,
        channels: int = 256,
        batch_norm: bool = False,
        naf_threshold: float | None = _NAF_DEFAULT,
        **head: Any,
    ) -> None:
        _check_head_keys("refinedet", head, set())
        # RefineDet's loss (Eq. 1) always has the ARM's binary term, with or without NAF
        super().__init__(backbone, num_classes, anchors_per_cell, channels, batch_norm, naf_threshold, objectness=True)
        self.odm_loc = ConvPredictor(self.tcb.out_channels, anchors_per_cell, 4)
        self.odm_conf = ConvPredictor(self.tcb.out_channels, anchors_per_cell, num_classes + 1)

    def _odm(self, odm_feats, arm_loc):  # type: ignore[no-untyped-def]
        return self.odm_loc(odm_feats), self.odm_conf(odm_feats)


class DRNet(_TwoStepDetector):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        anchors_per_cell: int = 3,
        channels: int = 256,
        batch_norm: bool = False,
        naf_threshold: float | None = None,
        deform_kernels: tuple[int, ...] | list[int] = (3, 5),
        **head: Any,
    ) -> None:
        _check_head_keys("drnet", head, set())
        kernels = tuple(int(k) for k in deform_kernels)
        if not kernels or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"drnet: deform_kernels must be odd sizes >= 1, got {deform_kernels}")
        super().__init__(
            backbone, num_classes, anchors_per_cell, channels, batch_norm, naf_threshold,
            objectness=naf_threshold is not None,
        )
        self.feature_offsets = FeatureOffsetPredictor(len(backbone.out_channels), anchors_per_cell, kernels)
        self.odm_head = DeformablePredictor(self.tcb.out_channels, anchors_per_cell, (4, num_classes + 1), kernels)

    def _odm(self, odm_feats, arm_loc):  # type: ignore[no-untyped-def]
        return self.odm_head(odm_feats, self.feature_offsets(arm_loc))


ARCHITECTURES: dict[str, type[SingleShotDetector]] = {"ssd4s": SSD4s, "refinedet": RefineDet, "drnet": DRNet}
