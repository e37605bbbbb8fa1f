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


def hard_negative_mask(
    class_loss: torch.Tensor, positives: torch.Tensor, ignore: torch.Tensor | None, neg_pos_ratio: float
) -> torch.Tensor:
    """Per image, select the ``ratio * num_pos`` highest-loss negatives (SSD section 2.2).

    ``class_loss``, ``positives``, ``ignore``: ``(B, A)``. Returns a bool ``(B, A)`` mask of the negatives.
    """
    ranking_loss = class_loss.detach().clone()
    excluded = positives if ignore is None else positives | ignore
    ranking_loss[excluded] = -1.0  # cross-entropy is >= 0, so excluded anchors sort last
    candidates = (~excluded).sum(dim=1)
    num_neg = torch.minimum((neg_pos_ratio * positives.sum(dim=1)).long(), candidates)
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed (not yet normalised) smooth-L1 and cross-entropy over positives and mined negatives.

    Returns ``(loc_loss_sum, conf_loss_sum, num_positives)``.
    """
    positives = labels > 0
    if ignore is not None:
        positives = positives & ~ignore
    num_classes = conf.shape[-1]
    ce = F.cross_entropy(conf.reshape(-1, num_classes), labels.reshape(-1), reduction="none").view_as(labels)
    negatives = hard_negative_mask(ce, positives, ignore, neg_pos_ratio)
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
    """

    def __init__(
        self,
        overlap_threshold: float = 0.5,
        neg_pos_ratio: float = 3.0,
        variances: Sequence[float] = DEFAULT_VARIANCES,
        naf_threshold: float | None = None,
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
        priors = priors.to(outputs.loc)
        terms: dict[str, torch.Tensor] = {}
        zero = outputs.loc.sum() * 0.0  # keeps the graph so backward() works on object-free batches

        ignore = None
        if outputs.two_step:
            assert outputs.arm_loc is not None
            loc_t, labels = self._match_batch(targets, priors)
            binary = (labels > 0).long()
            if outputs.arm_conf is not None:
                arm_loc_sum, arm_conf_sum, arm_pos = multibox_terms(
                    outputs.arm_loc, outputs.arm_conf, loc_t, binary, None, self.neg_pos_ratio
                )
            else:  # TRNet/TDRNet-style reference generators may predict offsets only
                positives = binary > 0
                arm_loc_sum = F.smooth_l1_loss(outputs.arm_loc[positives], loc_t[positives], reduction="sum")
                arm_conf_sum, arm_pos = zero, positives.sum()
            n_arm = arm_pos.clamp(min=1).to(zero.dtype)
            terms["arm_loc"] = arm_loc_sum / n_arm if arm_pos > 0 else zero
            terms["arm_conf"] = arm_conf_sum / n_arm if arm_pos > 0 else zero
            refined = refine_anchors(outputs.arm_loc.detach(), priors, self.variances, soft_coefficient)
            if self.naf_threshold is not None and outputs.arm_conf is not None:
                ignore = F.softmax(outputs.arm_conf.detach(), dim=-1)[..., 0] > self.naf_threshold
            odm_anchors = refined
        else:
            odm_anchors = priors

        loc_t, labels = self._match_batch(targets, odm_anchors)
        loc_sum, conf_sum, num_pos = multibox_terms(
            outputs.loc, outputs.conf, loc_t, labels, ignore, self.neg_pos_ratio
        )
        n_odm = num_pos.clamp(min=1).to(zero.dtype)
        terms["odm_loc"] = loc_sum / n_odm if num_pos > 0 else zero
        terms["odm_conf"] = conf_sum / n_odm if num_pos > 0 else zero
        terms["loss"] = sum(terms.values(), zero)
        terms["num_pos"] = num_pos.detach()
        return terms
