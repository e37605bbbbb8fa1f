"""From head outputs to final detections: decode, score, filter, per-class NMS (DRNet section III-D).

Negative anchor filtering and the soft coefficient are arguments, not globals: pass the model's
``naf_threshold`` and the stream's ``e`` (``engine.temporal.TemporalDetector`` does). Decoding runs in float32
whatever the network's dtype. Boxes that leave the image entirely collapse to zero area when clipped; they are
dropped (with non-finite ones) rather than handed to a grasp planner as corner points.

Defaults follow the papers: candidates with score > 0.01, the 400 most confident kept per image before NMS
(RefineDet), NMS at IoU 0.45 per class, at most 200 detections per image. All of them are configurable,
because a grasp planner wants far fewer, far more confident boxes than an mAP evaluation does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from .box_coding import DEFAULT_VARIANCES, decode, decode_two_step
from .nms import batched_nms
from .outputs import HeadOutputs


_MIN_SIDE = 1e-6  # normalised; a clipped box thinner than this has left the image


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 0.01
    nms_iou: float = 0.45
    pre_nms_top_k: int = 400
    max_detections: int = 200

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        ints = (self.pre_nms_top_k, self.max_detections)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or min(ints) < 1:
            raise ValueError(
                f"pre_nms_top_k ({self.pre_nms_top_k}) and max_detections ({self.max_detections}) must be >= 1"
            )

    @classmethod
    def from_dict(cls, cfg: dict | None) -> "PostprocessConfig":
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown postprocess keys {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**cfg)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_max_detections(self, max_detections: int) -> "PostprocessConfig":
        """A copy keeping ``max_detections`` per image. NMS only sees the ``pre_nms_top_k`` best boxes, so a cap
        above that is raised with it; otherwise the cap would silently keep fewer than asked."""
        return replace(self, max_detections=max_detections, pre_nms_top_k=max(self.pre_nms_top_k, max_detections))


@dataclass
class ImageDetections:
    """Detections of one image: normalised corner ``boxes (N, 4)``, ``scores (N,)``, ``labels (N,)`` from 0."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def class_scores(outputs: HeadOutputs, naf_threshold: float | None = None) -> torch.Tensor:
    """Foreground class probabilities ``(B, A, C)``; negative anchor filtering zeroes ARM-rejected anchors."""
    scores = F.softmax(outputs.conf, dim=-1)[..., 1:]
    if naf_threshold is not None and outputs.arm_conf is not None:
        rejected = F.softmax(outputs.arm_conf, dim=-1)[..., 0] > naf_threshold
        scores = scores.masked_fill(rejected.unsqueeze(-1), 0.0)
    return scores


def decode_boxes(
    outputs: HeadOutputs,
    priors: torch.Tensor,
    variances: tuple[float, float] = DEFAULT_VARIANCES,
    soft_coefficient: float = 1.0,
) -> torch.Tensor:
    """``(B, A, 4)`` corner boxes, two-step when the outputs carry ARM offsets."""
    if priors.shape[0] != outputs.loc.shape[1]:
        raise ValueError(
            f"{priors.shape[0]} anchors but the head predicts {outputs.loc.shape[1]}: the input size or anchor "
            "config does not match the model"
        )
    outputs = HeadOutputs(*(None if t is None else t.float() for t in outputs))
    priors = priors.to(device=outputs.loc.device, dtype=torch.float32)
    if outputs.arm_loc is not None:
        return decode_two_step(outputs.loc, outputs.arm_loc, priors, variances, soft_coefficient)
    return decode(outputs.loc, priors, variances)


def select_detections(
    boxes: torch.Tensor, scores: torch.Tensor, config: PostprocessConfig = PostprocessConfig()
) -> ImageDetections:
    """One image: ``boxes (A, 4)``, ``scores (A, C)`` -> thresholded, top-k, per-class NMS'd detections."""
    num_classes = scores.shape[1]
    flat_scores = scores.reshape(-1)
    keep = torch.nonzero(flat_scores > config.score_threshold).squeeze(1)
    if keep.numel() > config.pre_nms_top_k:
        keep = keep[flat_scores[keep].topk(config.pre_nms_top_k).indices]
    anchor_idx = keep // num_classes
    labels = keep % num_classes
    cand_boxes = boxes[anchor_idx].clamp(0.0, 1.0)
    cand_scores = flat_scores[keep]
    valid = torch.isfinite(boxes[anchor_idx]).all(dim=1) & (cand_boxes[:, 2] - cand_boxes[:, 0] > _MIN_SIDE) & (
        cand_boxes[:, 3] - cand_boxes[:, 1] > _MIN_SIDE
    )
    if not bool(valid.all()):
        cand_boxes, cand_scores, labels = cand_boxes[valid], cand_scores[valid], labels[valid]
    kept = batched_nms(cand_boxes, cand_scores, labels, config.nms_iou)[: config.max_detections]
    return ImageDetections(cand_boxes[kept], cand_scores[kept], labels[kept])


def postprocess(
    outputs: HeadOutputs,
    priors: torch.Tensor,
    config: PostprocessConfig = PostprocessConfig(),
    variances: tuple[float, float] = DEFAULT_VARIANCES,
    naf_threshold: float | None = None,
    soft_coefficient: float = 1.0,
) -> list[ImageDetections]:
    boxes = decode_boxes(outputs, priors, variances, soft_coefficient).float()
    scores = class_scores(outputs, naf_threshold).float()
    return [select_detections(boxes[i], scores[i], config) for i in range(boxes.shape[0])]
