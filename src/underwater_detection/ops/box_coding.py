"""Box formats, IoU and the SSD offset coding (with variances) used by every head.

Conventions (DESIGN.md): boxes are ``(x1, y1, x2, y2)`` normalised to [0, 1] inside the core, anchors are
``(cx, cy, w, h)``. Offsets are ``((gx - ax) / (v0 * aw), (gy - ay) / (v0 * ah), log(gw / aw) / v1,
log(gh / ah) / v1)`` with variances ``(v0, v1) = (0.1, 0.2)``: the variances just rescale the targets so the
four regression outputs have similar magnitude, which is why every coder here takes them explicitly.

Two-step regression (RefineDet, DRNet Eq. 4): the ARM's offsets are decoded against the original anchors to
give *refined anchors*, and the ODM's offsets are decoded against those. TRNet/TDRNet soften the first step
with a coefficient ``e`` (``ar * e``) so propagated anchors stay loose enough to follow motion.
"""
from __future__ import annotations

import torch

DEFAULT_VARIANCES: tuple[float, float] = (0.1, 0.2)

# exp() of a runaway width/height offset overflows to inf and poisons NMS; log(1000/16) bounds the growth of
# a box to ~60x its anchor in one step, far beyond anything a sane regression produces.
_MAX_LOG_SCALE = 4.135


def center_to_corners(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    half = boxes[..., 2:] / 2
    return torch.cat([boxes[..., :2] - half, boxes[..., :2] + half], dim=-1)


def corners_to_center(boxes: torch.Tensor) -> torch.Tensor:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of corner boxes: ``(N, 4) x (M, 4) -> (N, M)``; degenerate boxes give IoU 0, not NaN."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def encode(
    matched: torch.Tensor, anchors: torch.Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES
) -> torch.Tensor:
    """Offsets that move ``anchors`` (cx, cy, w, h) onto ``matched`` corner boxes; shapes broadcast ``(..., 4)``."""
    g = corners_to_center(matched)
    eps = torch.finfo(g.dtype).eps
    dxy = (g[..., :2] - anchors[..., :2]) / (variances[0] * anchors[..., 2:])
    dwh = torch.log(g[..., 2:].clamp(min=eps) / anchors[..., 2:]) / variances[1]
    return torch.cat([dxy, dwh], dim=-1)


def decode_to_center(
    offsets: torch.Tensor, anchors: torch.Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES
) -> torch.Tensor:
    """Apply offsets to anchors and stay in ``(cx, cy, w, h)``: the form a second decoding step needs."""
    cxy = anchors[..., :2] + offsets[..., :2] * variances[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp((offsets[..., 2:] * variances[1]).clamp(-_MAX_LOG_SCALE, _MAX_LOG_SCALE))
    return torch.cat([cxy, wh], dim=-1)


def decode(
    offsets: torch.Tensor, anchors: torch.Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES
) -> torch.Tensor:
    """Inverse of :func:`encode`: corner boxes ``(x1, y1, x2, y2)``."""
    return center_to_corners(decode_to_center(offsets, anchors, variances))


def refine_anchors(
    arm_offsets: torch.Tensor,
    anchors: torch.Tensor,
    variances: tuple[float, float] = DEFAULT_VARIANCES,
    soft_coefficient: float = 1.0,
) -> torch.Tensor:
    """First regression step: ``decode(e * ar, anchors)`` in ``(cx, cy, w, h)``.

    ``soft_coefficient`` is the paper's ``e`` (TDRNet section IV-C): 1 gives the ARM/RG's refined anchors,
    0 gives back the original anchors, values between relax the refinement so stale references (non-key
    frames) still cover objects that moved.
    """
    if not 0.0 <= soft_coefficient <= 1.0:
        raise ValueError(f"soft refinement coefficient e must be in [0, 1], got {soft_coefficient}")
    if soft_coefficient != 1.0:
        arm_offsets = arm_offsets * soft_coefficient
    return decode_to_center(arm_offsets, anchors, variances)


def decode_two_step(
    odm_offsets: torch.Tensor,
    arm_offsets: torch.Tensor,
    anchors: torch.Tensor,
    variances: tuple[float, float] = DEFAULT_VARIANCES,
    soft_coefficient: float = 1.0,
) -> torch.Tensor:
    """Second step (DRNet Eq. 4 ``P_local ⊕ (ar ⊕ ao)``): ODM offsets against the refined anchors, corners."""
    refined = refine_anchors(arm_offsets, anchors, variances, soft_coefficient)
    return decode(odm_offsets, refined, variances)
