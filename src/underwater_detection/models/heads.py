"""Prediction heads: plain convolution (SSD / RefineDet / TRNet) and (multi-)deformable (DRNet / TDRNet).

A head maps a list of per-level feature maps to per-level prediction maps ``(B, A*k, H, W)``; flattening into
anchor order happens once, in ``ops.outputs.flatten_levels``.

Anchor-offset detection (DRNet section III-B): the deformable head samples the ODM features at locations
shifted by ``Δp = W_fr * ar`` (Eq. 3), a learnable 1x1 convolution of the ARM's anchor-offset map. The
multi-deformable head (Eq. 5) runs several such paths with different kernel sizes (3x3 and 5x5 in the
paper's best design, Table II), each with its own feature location refinement, and sums their predictions.
The offset predictor and the deformable head are separate modules because TDRNet splits them across two
networks: the reference generator predicts ``Δp`` on key frames, the refinement detector consumes it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..ops.deform_conv import DeformConv2d


def _init_conv(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, DeformConv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvPredictor(nn.Module):
    """One 3x3 convolution per level predicting ``anchors_per_cell * outputs_per_anchor`` channels."""

    def __init__(
        self, in_channels: Sequence[int], anchors_per_cell: int, outputs_per_anchor: int, kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.outputs_per_anchor = outputs_per_anchor
        self.convs = nn.ModuleList(
            nn.Conv2d(c, anchors_per_cell * outputs_per_anchor, kernel_size, padding=kernel_size // 2)
            for c in in_channels
        )
        _init_conv(self)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.convs):
            raise ValueError(f"head built for {len(self.convs)} levels got {len(features)} feature maps")
        return [conv(f) for conv, f in zip(self.convs, features)]


class FeatureOffsetPredictor(nn.Module):
    """Feature location refinement, Eq. 3: ``Δp = W_fr * ar`` with a 1x1 conv per level and per path.

    Zero-initialised, so training starts from the regular sampling grid (a plain conv) and learns to move it:
    random initial offsets would scramble the features the head has not learned to read yet.
    """

    def __init__(self, num_levels: int, anchors_per_cell: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.paths = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(anchors_per_cell * 4, 2 * k * k, kernel_size=1) for _ in range(num_levels))
            for k in self.kernel_sizes
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, anchor_offset_maps: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
        """``ar`` maps ``(B, A*4, H, W)`` per level -> offsets ``[path][level] (B, 2*k*k, H, W)``.

        Offsets are computed in float32 whatever the autocast dtype: a half-precision sampling position is
        off by up to a quarter pixel at 40x40, which is the very misalignment this module exists to remove.
        """
        maps = [m.float() for m in anchor_offset_maps]
        with torch.autocast(device_type=maps[0].device.type, enabled=False):
            return [[conv(m) for conv, m in zip(path, maps)] for path in self.paths]


class DeformablePredictor(nn.Module):
    """Multi-deformable head (Eq. 4-5): per path a k x k deformable conv per level; paths are summed.

    Localisation and classification use the same offsets ``Δp`` (Eq. 4), so one deformable conv with their
    output channels stacked computes both: the bilinear sampling, which dominates the cost on a CPU, is done
    once per path and level instead of twice. ``forward`` returns one list of maps per output group.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        anchors_per_cell: int,
        outputs_per_anchor: Sequence[int],
        kernel_sizes: Sequence[int],
    ) -> None:
        super().__init__()
        self.split = [anchors_per_cell * k for k in outputs_per_anchor]
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.paths = nn.ModuleList(
            nn.ModuleList(
                DeformConv2d(c, sum(self.split), k, padding=k // 2, bias=(p == 0)) for c in in_channels
            )
            for p, k in enumerate(self.kernel_sizes)
        )
        _init_conv(self)

    def forward(
        self, features: Sequence[torch.Tensor], offsets: Sequence[Sequence[torch.Tensor]]
    ) -> list[list[torch.Tensor]]:
        if len(offsets) != len(self.paths):
            raise ValueError(f"deformable head has {len(self.paths)} paths but got offsets for {len(offsets)}")
        groups: list[list[torch.Tensor]] = [[] for _ in self.split]
        for level, feature in enumerate(features):
            total = None
            for path, path_offsets in zip(self.paths, offsets):
                out = path[level](feature, path_offsets[level])  # offsets stay fp32 (see FeatureOffsetPredictor)
                total = out if total is None else total + out
            assert total is not None
            for group, part in zip(groups, torch.split(total, self.split, dim=1)):
                group.append(part)
        return groups
