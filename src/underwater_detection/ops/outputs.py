"""The one tensor contract between detectors, losses and post-processing.

Every detector (SSD4s, RefineDet, DRNet, and the TRNet/TDRNet refinement detector) returns
:class:`HeadOutputs`. Single-step detectors leave the ARM fields ``None``; two-step detectors fill them, and
losses / decoding then do two-step regression automatically. Keeping this in ``ops`` lets the losses and the
post-processing stay independent of any particular model class.

Shapes (``A`` = number of anchors, ``C`` = foreground classes):
    loc       (B, A, 4)      ODM offsets (against the refined anchors when ``arm_loc`` is given)
    conf      (B, A, C + 1)  ODM class logits, index 0 = background
    arm_loc   (B, A, 4)      ARM / RG anchor offsets ``ar`` against the original anchors
    arm_conf  (B, A, 2)      ARM objectness logits (background, object); ``None`` if the model has none
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class HeadOutputs(NamedTuple):
    loc: torch.Tensor
    conf: torch.Tensor
    arm_loc: Optional[torch.Tensor] = None
    arm_conf: Optional[torch.Tensor] = None

    @property
    def two_step(self) -> bool:
        return self.arm_loc is not None


def flatten_level(x: torch.Tensor, channels_per_anchor: int) -> torch.Tensor:
    """``(B, A*k, H, W)`` conv output -> ``(B, H*W*A, k)`` in the anchor order of ``ops.priors``."""
    b = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(b, -1, channels_per_anchor)


def flatten_levels(maps: list[torch.Tensor], channels_per_anchor: int) -> torch.Tensor:
    return torch.cat([flatten_level(m, channels_per_anchor) for m in maps], dim=1)
