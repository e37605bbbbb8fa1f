"""Multibox losses with hard negative mining, for one- and two-step detectors.

RefineDet Eq. 1 / DRNet section III-D:

    L = (L_b(ARM) + L_r(ARM)) / N_arm + (L_m(ODM) + L_r(ODM)) / N_odm

* ARM: 2-way softmax cross-entropy (object vs background, i.e. a binary cross-entropy) and smooth L1 on the
  anchor offsets, matched against the original anchors.
* ODM: softmax cross-entropy over ``C + 1`` classes and smooth L1, matched against the refined anchors
  ``decode(e * ar, anchors)`` computed from the (detached) ARM offsets, exactly as used at test time.
* Hard negative mining keeps the negatives with the highest classification loss, at most ``neg_pos_ratio``
  (3) per positive in each image, so the ~6000 easy background anchors do not drown the few objects.
* Negative anchor filtering (RefineDet, theta = 0.99, optional): anchors the ARM is already sure are
  background are ignored by the ODM loss, neither positives nor mined negatives.
* Each term is divided by its own number of positives; a batch with no objects gives an exact zero loss
  (with a graph, so ``backward()`` still works) instead of a division by zero.
* ``min_negatives_per_image`` (default 0 = SSD/RefineDet) lets object-free frames, common on an empty
  seabed, still contribute their hardest negatives.
* DRNet's loss (section III-D) has no ARM confidence term; a model built without an objectness head
  (``arm_conf is None``) gets exactly that.
* Matching, encoding and the losses run in float32 even under autocast: IoU near 0.5 and ``log`` in the box
  coding are too coarse in fp16.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .box_coding import DEFAULT_VARIANCES, encode, refine_anchors
from .matching import match_anchors
from .outputs import HeadOutputs


@dataclass
class Targets:
    """Ground truth of one image: normalised corner boxes ``(G, 4)`` and class indices ``(G,)`` from 0."""

    boxes: torch.Tensor
    labels: torch.Tensor

    def validate(self, num_classes: int, where: str = "target") -> None:
        """Bad annotations fail loudly here, not as a silent background label or a loss spike."""
        boxes, labels = self.boxes, self.labels
        if boxes.dim() != 2 or boxes.shape[1] != 4 or labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
            raise ValueError(f"{where}: boxes must be (G, 4) and labels (G,), got {tuple(boxes.shape)} and {tuple(labels.shape)}")
        if boxes.numel() == 0:
            return
        if not torch.isfinite(boxes).all():
            raise ValueError(f"{where}: non-finite box coordinates")
        tol = 1e-3
        if boxes.min() < -tol or boxes.max() > 1 + tol:
            raise ValueError(
                f"{where}: boxes must be normalised to [0, 1] (x1, y1, x2, y2), got range "
                f"[{float(boxes.min()):.3f}, {float(boxes.max()):.3f}]: pixel boxes?"
            )
        if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
            bad = boxes[(boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])][0].tolist()
            raise ValueError(f"{where}: box with zero or negative width/height {bad}; drop it before training")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"{where}: labels must be class indices in [0, {num_classes}), got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )


def hard_negative_mask(
    class_loss: torch.Tensor,
    positives: torch.Tensor,
    ignore: torch.Tensor | None,
    neg_pos_ratio: float,
    min_negatives: int = 0,
) -> torch.Tensor:
    """Per image, select the ``ratio * num_pos`` highest-loss negatives (SSD section 2.2).

    ``class_loss``, ``positives``, ``ignore``: ``(B, A)``. Returns a bool ``(B, A)`` mask of the negatives.
    """
    ranking_loss = class_loss.detach().clone()
    excluded = positives if ignore is None else positives | ignore
    ranking_loss[excluded] = -1.0  # cross-entropy is >= 0, so excluded anchors sort last
    candidates = (~excluded).sum(dim=1)
    wanted = (neg_pos_ratio * positives.sum(dim=1)).long().clamp(min=min_negatives)
    num_neg = torch.minimum(wanted, candidates)
    order = ranking_loss.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    return rank < num_neg.unsqueeze(1)


def multibox_terms(
    loc: torch.Tensor,
    conf: torch.Tensor,
    loc_targets: torch.Tensor,
    labels: torch.Tensor,
    ignore: torch.Tensor | None = None,
    neg_pos_ratio: float = 3.0,
    min_negatives: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed (not yet normalised) smooth-L1 and cross-entropy over positives and mined negatives.

    Returns ``(loc_loss_sum, conf_loss_sum, num_positives)``.
    """
    positives = labels > 0
    if ignore is not None:
        positives = positives & ~ignore
    num_classes = conf.shape[-1]
    ce = F.cross_entropy(conf.reshape(-1, num_classes), labels.reshape(-1), reduction="none").view_as(labels)
    negatives = hard_negative_mask(ce, positives, ignore, neg_pos_ratio, min_negatives)
    conf_sum = ce[positives | negatives].sum()
    loc_sum = F.smooth_l1_loss(loc[positives], loc_targets[positives], reduction="sum", beta=1.0)
    return loc_sum, conf_sum, positives.sum()


class MultiBoxLoss(torch.nn.Module):
    """Loss for any :class:`HeadOutputs`: SSD-style if the ARM fields are empty, RefineDet/DRNet otherwise.

    Args:
        overlap_threshold: IoU above which an anchor is positive (0.5).
        neg_pos_ratio: hard negative mining ratio (3).
        variances: box coding variances (0.1, 0.2).
        naf_threshold: negative anchor filtering theta (0.99) or ``None`` to disable (DRNet's default).
        min_negatives_per_image: hard negatives mined even from images without objects.

    Build it with :meth:`for_model` so NAF and the variances come from the model and its spec.
    """

    def __init__(
        self,
        overlap_threshold: float = 0.5,
        neg_pos_ratio: float = 3.0,
        variances: Sequence[float] = DEFAULT_VARIANCES,
        naf_threshold: float | None = None,
        min_negatives_per_image: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < overlap_threshold < 1.0:
            raise ValueError(f"overlap_threshold must be in (0, 1), got {overlap_threshold}")
        if neg_pos_ratio < 0:
            raise ValueError(f"neg_pos_ratio must be >= 0, got {neg_pos_ratio}")
        if naf_threshold is not None and not 0.0 < naf_threshold < 1.0:
            raise ValueError(f"naf_threshold must be in (0, 1) or None, got {naf_threshold}")
        self.overlap_threshold = overlap_threshold
        self.neg_pos_ratio = neg_pos_ratio
        self.variances = (float(variances[0]), float(variances[1]))
        self.naf_threshold = naf_threshold
        if min_negatives_per_image < 0:
            raise ValueError(f"min_negatives_per_image must be >= 0, got {min_negatives_per_image}")
        self.min_negatives = int(min_negatives_per_image)

    @classmethod
    def for_model(cls, model: torch.nn.Module, variances: Sequence[float], **options: float) -> "MultiBoxLoss":
        """The loss a model was designed with: its negative anchor filtering setting and the spec's variances."""
        return cls(variances=variances, naf_threshold=getattr(model, "naf_threshold", None), **options)

    def _match_batch(
        self, targets: Sequence[Targets], anchors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``anchors`` is ``(A, 4)`` shared or ``(B, A, 4)`` per image (refined anchors)."""
        loc_targets, labels = [], []
        for i, target in enumerate(targets):
            image_anchors = anchors if anchors.dim() == 2 else anchors[i]
            matched, lab = match_anchors(target.boxes, target.labels, image_anchors, self.overlap_threshold)
            loc_targets.append(encode(matched, image_anchors, self.variances))
            labels.append(lab)
        return torch.stack(loc_targets), torch.stack(labels)

    def forward(
        self,
        outputs: HeadOutputs,
        priors: torch.Tensor,
        targets: Sequence[Targets],
        soft_coefficient: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        if len(targets) != outputs.loc.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {outputs.loc.shape[0]} images")
        if priors.shape[0] != outputs.loc.shape[1]:
            raise ValueError(
                f"{priors.shape[0]} anchors but the head predicts {outputs.loc.shape[1]}: the input size or "
                "anchor config does not match the model"
            )
        num_classes = outputs.conf.shape[-1] - 1
        for i, target in enumerate(targets):
            target.validate(num_classes, f"image {i} of the batch")
        outputs = HeadOutputs(*(None if t is None else t.float() for t in outputs))
        priors = priors.to(device=outputs.loc.device, dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        # A term the model does not have is a constant zero with no graph: a "0 * output" stand-in would hand
        # zero gradients to that network, and SGD would still decay and move it. Terms that exist keep their
        # graph even for object-free batches (sums over no anchors), so backward() always works.
        zero = torch.zeros((), device=outputs.loc.device)

        ignore = None
        if outputs.two_step:
            assert outputs.arm_loc is not None
            loc_t, labels = self._match_batch(targets, priors)
            binary = (labels > 0).long()
            if outputs.arm_conf is not None:
                arm_loc_sum, arm_conf_sum, arm_pos = multibox_terms(
                    outputs.arm_loc, outputs.arm_conf, loc_t, binary, None, self.neg_pos_ratio, self.min_negatives
                )
            else:  # DRNet (III-D) and its RG: anchor offsets only, no objectness term
                positives = binary > 0
                arm_loc_sum = F.smooth_l1_loss(outputs.arm_loc[positives], loc_t[positives], reduction="sum")
                arm_conf_sum, arm_pos = zero, positives.sum()
            n_arm = arm_pos.clamp(min=1).to(zero.dtype)
            terms["arm_loc"] = arm_loc_sum / n_arm  # sums over no anchors are exact zeros
            terms["arm_conf"] = arm_conf_sum / n_arm
            refined = refine_anchors(outputs.arm_loc.detach(), priors, self.variances, soft_coefficient)
            if self.naf_threshold is not None and outputs.arm_conf is not None:
                ignore = F.softmax(outputs.arm_conf.detach(), dim=-1)[..., 0] > self.naf_threshold
            odm_anchors = refined
        else:
            odm_anchors = priors

        loc_t, labels = self._match_batch(targets, odm_anchors)
        loc_sum, conf_sum, num_pos = multibox_terms(
            outputs.loc, outputs.conf, loc_t, labels, ignore, self.neg_pos_ratio, self.min_negatives
        )
        n_odm = num_pos.clamp(min=1).to(zero.dtype)
        terms["odm_loc"] = loc_sum / n_odm
        terms["odm_conf"] = conf_sum / n_odm
        terms["loss"] = sum(terms.values(), zero)
        terms["num_pos"] = num_pos.detach()
        return terms
