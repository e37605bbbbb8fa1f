"""TRNet and TDRNet: a reference generator (RG) and a refinement detector (RD) (TDRNet paper, section IV).

* RG: an SSD4s-structured network with its own backbone that predicts, like DRNet's ARM, per-anchor
  objectness and anchor offsets ``ar``; for TDRNet also the feature offsets ``Δp = W_fr * ar`` (Eq. 3).
* RD: an SSD4s-structured network with its own backbone whose head is a plain convolution (TRNet) or the
  (multi-)deformable head fed with RG's ``Δp`` (TDRNet, Eq. 7). Its box offsets decode against the soft
  refined anchors ``decode(e * ar, anchors)``. Optionally (``head.rd_neck_channels``; off by default, not in the
  paper) RD puts RefineDet's top-down transfer connection blocks between its backbone and its head, which makes
  TDRNet's RD exactly DRNet's ODM path. Why: on this project's benchmark the models whose detection head reads
  the backbone directly (SSD4s, TRNet, TDRNet) all find sea cucumbers worst of the four classes and the two with
  the TCB neck (RefineDet, DRNet) do not; with a 64-channel neck the first 2000-iteration cycle of TDRNet lite
  reaches 56.5 mAP@0.5 at k = 4 against 26.5 without (docs/experiments.md, "A top-down neck in RD is the lever").
* The soft coefficient reaches TDRNet's features too: the paper defines the soft anchor offset ``ars = e * ar``
  and TDRNet derives its feature offsets from the anchor offsets, so ``Δp = W_fr * ars``. Computing ``Δp`` from
  the full ``ar`` while the anchors move by ``e * ar`` would sample features away from the anchors RD decodes
  against, the very misalignment the anchor-offset detection removes; measured on the 6000-iteration TDRNet
  (5 test sequences, e = 0.5, k = 1): COCO AP 22.4 with ``Δp`` from ``ar``, 28.2 from ``e * ar``.

On video only key frames pay for RG (``reference``); every frame runs RD (``detect``) with the references of
the latest key frame (``engine.temporal.TemporalDetector`` schedules that). Training follows Fig. 5b: on
static images, RG plays the ARM and RD the ODM with RG's outputs for the *same* image as its references, and
``e`` applied to ``ar`` exactly as at test time (``MultiBoxLoss(..., soft_coefficient=e)``).

``forward(x)`` = ``detect(x, reference(x))`` returns :class:`HeadOutputs` with ``arm_loc = ar`` (unscaled) and
the RG objectness, so the shared loss and post-processing apply unchanged (pass ``soft_coefficient=e``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from ..ops.outputs import HeadOutputs, flatten_levels
from ..ops.priors import check_input_size
from .detectors import AnchorRefinementModule, _check_head_keys
from .heads import ConvPredictor, DeformablePredictor, FeatureOffsetPredictor
from .necks import TransferConnectionNeck
from .spec import validate_soft_coefficient


@dataclass
class References:
    """What RG hands to RD, cached between key frames.

    ``arm_loc`` ``(B, A, 4)`` anchor offsets ``ar`` (unscaled; ``e`` is applied at decoding),
    ``arm_conf`` ``(B, A, 2)`` objectness logits, ``offsets`` ``[path][level] (B, 2*k*k, H, W)`` feature
    offsets for TDRNet (``None`` for TRNet).
    """

    arm_loc: torch.Tensor
    arm_conf: Optional[torch.Tensor] = None
    offsets: Optional[list[list[torch.Tensor]]] = None

    @property
    def batch_size(self) -> int:
        return int(self.arm_loc.shape[0])

    def select(self, index: int) -> "References":
        """One image's references (keeps the batch dimension)."""
        sl = slice(index, index + 1)
        offsets = None if self.offsets is None else [[o[sl] for o in path] for path in self.offsets]
        return References(self.arm_loc[sl], None if self.arm_conf is None else self.arm_conf[sl], offsets)

    @staticmethod
    def stack(refs: list["References"]) -> "References":
        offsets = None
        if refs[0].offsets is not None:
            offsets = [
                [torch.cat([r.offsets[p][lvl] for r in refs]) for lvl in range(len(refs[0].offsets[p]))]  # type: ignore[index]
                for p in range(len(refs[0].offsets))
            ]
        conf = None if refs[0].arm_conf is None else torch.cat([r.arm_conf for r in refs])  # type: ignore[misc]
        return References(torch.cat([r.arm_loc for r in refs]), conf, offsets)


def _check_image(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
    check_input_size(int(x.shape[2]), int(x.shape[3]))


class ReferenceGenerator(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        anchors_per_cell: int,
        deform_kernels: tuple[int, ...] | None,
        objectness: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.arm = AnchorRefinementModule(backbone.out_channels, anchors_per_cell, objectness)
        self.feature_offsets = (
            FeatureOffsetPredictor(len(backbone.out_channels), anchors_per_cell, deform_kernels)
            if deform_kernels
            else None
        )

    def forward(self, x: torch.Tensor, soft_coefficient: float = 1.0) -> References:
        """``soft_coefficient`` (e) scales the anchor offsets the feature offsets are computed from,
        ``Δp = W_fr * (e * ar)``, so RD samples features where the soft refined anchors ``decode(e * ar)`` are;
        ``arm_loc`` stays unscaled (decoding applies e)."""
        _check_image(x)
        loc_maps, conf_maps = self.arm(list(self.backbone(x)))
        offsets = None
        if self.feature_offsets is not None:
            e = validate_soft_coefficient(soft_coefficient)
            offsets = self.feature_offsets(loc_maps if e == 1.0 else [m * e for m in loc_maps])
        conf = None if conf_maps is None else flatten_levels(conf_maps, 2)
        return References(flatten_levels(loc_maps, 4), conf, offsets)


class RefinementDetector(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        anchors_per_cell: int,
        deform_kernels: tuple[int, ...] | None,
        neck_channels: int | None = None,
        neck_batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.neck = (
            TransferConnectionNeck(backbone.out_channels, neck_channels, neck_batch_norm) if neck_channels else None
        )
        channels = backbone.out_channels if self.neck is None else self.neck.out_channels
        if deform_kernels:
            self.head: nn.Module = DeformablePredictor(channels, anchors_per_cell, (4, num_classes + 1), deform_kernels)
            self.deformable = True
        else:
            self.loc_head = ConvPredictor(channels, anchors_per_cell, 4)
            self.conf_head = ConvPredictor(channels, anchors_per_cell, num_classes + 1)
            self.deformable = False

    def forward(self, x: torch.Tensor, refs: References) -> tuple[torch.Tensor, torch.Tensor]:
        _check_image(x)
        feats = list(self.backbone(x))
        if self.neck is not None:
            feats = self.neck(feats)
        if self.deformable:
            if refs.offsets is None:
                raise ValueError("TDRNet's refinement detector needs feature offsets from its reference generator")
            loc_maps, conf_maps = self.head(feats, refs.offsets)
        else:
            loc_maps, conf_maps = self.loc_head(feats), self.conf_head(feats)
        return flatten_levels(loc_maps, 4), flatten_levels(conf_maps, self.num_classes + 1)


class TemporalRefinementNet(nn.Module):
    """TRNet (``deform_kernels`` empty) or TDRNet: RG + RD in one module and one checkpoint."""

    def __init__(
        self,
        backbone: nn.Module,
        reference_backbone: nn.Module,
        num_classes: int,
        anchors_per_cell: int = 3,
        deform_kernels: tuple[int, ...] | list[int] | None = None,
        naf_threshold: float | None = None,
        architecture: str = "tdrnet",
        rd_neck_channels: int | None = None,
        rd_neck_batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (foreground classes), got {num_classes}")
        kernels = tuple(int(k) for k in (deform_kernels or ()))
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"{architecture}: deform_kernels must be odd sizes >= 1, got {deform_kernels}")
        if tuple(backbone.strides) != tuple(reference_backbone.strides):
            raise ValueError(f"{architecture}: RG and RD backbones must share strides")
        if rd_neck_channels is not None and (
            isinstance(rd_neck_channels, bool) or not isinstance(rd_neck_channels, int) or rd_neck_channels < 1
        ):
            raise ValueError(f"{architecture}: rd_neck_channels must be a positive integer or null, got {rd_neck_channels!r}")
        if not isinstance(rd_neck_batch_norm, bool):
            raise ValueError(f"{architecture}: rd_neck_batch_norm must be true or false, got {rd_neck_batch_norm!r}")
        self.num_classes = num_classes
        self.anchors_per_cell = anchors_per_cell
        self.naf_threshold = naf_threshold
        # Like DRNet's ARM: objectness only when negative anchor filtering uses it.
        self.rg = ReferenceGenerator(reference_backbone, anchors_per_cell, kernels or None, naf_threshold is not None)
        self.rd = RefinementDetector(
            backbone, num_classes, anchors_per_cell, kernels or None, rd_neck_channels, rd_neck_batch_norm
        )

    @property
    def backbone(self) -> nn.Module:
        """The per-frame (RD) backbone: its default normalisation is the model's."""
        return self.rd.backbone

    def reference(self, x: torch.Tensor, soft_coefficient: float = 1.0) -> References:
        return self.rg(x, soft_coefficient)

    def detect(self, x: torch.Tensor, refs: References) -> HeadOutputs:
        if refs.batch_size != x.shape[0]:
            raise ValueError(f"references for {refs.batch_size} images but a batch of {x.shape[0]}")
        loc, conf = self.rd(x, refs)
        return HeadOutputs(loc=loc, conf=conf, arm_loc=refs.arm_loc, arm_conf=refs.arm_conf)

    def forward(self, x: torch.Tensor, soft_coefficient: float = 1.0) -> HeadOutputs:
        return self.detect(x, self.reference(x, soft_coefficient))


TEMPORAL_HEAD_KEYS = {"deform_kernels", "naf_threshold", "rd_neck_channels", "rd_neck_batch_norm"}


def build_temporal(
    architecture: str,
    backbone: nn.Module,
    reference_backbone: nn.Module,
    num_classes: int,
    anchors_per_cell: int,
    head: dict[str, Any],
) -> TemporalRefinementNet:
    _check_head_keys(architecture, head, TEMPORAL_HEAD_KEYS)
    head = dict(head)
    if architecture == "trnet":
        if head.get("deform_kernels"):
            raise ValueError("trnet: a plain-convolution head has no deform_kernels (that is TDRNet)")
        head["deform_kernels"] = None
    elif not head.get("deform_kernels"):
        head["deform_kernels"] = (3,)
    return TemporalRefinementNet(
        backbone, reference_backbone, num_classes, anchors_per_cell, architecture=architecture, **head
    )
