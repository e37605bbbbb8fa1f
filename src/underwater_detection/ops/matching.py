"""Anchor-to-ground-truth matching (SSD / RefineDet section 4 "Anchors Design and Matching").

Rule, in this order: (1) every anchor whose best IoU with a ground truth exceeds ``threshold`` is matched to
that ground truth; (2) every ground truth then claims its single best anchor, whatever the IoU, so no object
is left without a positive (small or oddly shaped objects would otherwise never be trained). Step 2 wins over
step 1. When two objects share the same best anchor (small clustered urchins at stride 8), the first object
keeps it and the next one is forced onto its best anchor that is still free, so neither is left without a
positive. Ground truths with no overlap at all with any anchor (zero area) are never force-matched.

The same function serves both regression steps: the ARM/RG matches against the original anchors, the ODM/RD
against the (per-image) refined anchors.
"""
from __future__ import annotations

import torch

from .box_coding import box_iou, center_to_corners

BACKGROUND = 0


def match_anchors(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    anchors: torch.Tensor,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Match one image's ground truths to its anchors.

    Args:
        gt_boxes: ``(G, 4)`` corner boxes, normalised.
        gt_labels: ``(G,)`` class indices starting at 0 (foreground classes only).
        anchors: ``(A, 4)`` anchors ``(cx, cy, w, h)``.
        threshold: IoU above which an anchor is positive.

    Returns:
        ``matched_boxes (A, 4)`` corner boxes of the assigned ground truth (zeros for background) and
        ``labels (A,)`` long: 0 background, ``gt_label + 1`` for a positive.
    """
    num_anchors = anchors.shape[0]
    if gt_boxes.numel() == 0:
        return anchors.new_zeros((num_anchors, 4)), torch.zeros(num_anchors, dtype=torch.long, device=anchors.device)
    if gt_boxes.shape[0] != gt_labels.shape[0]:
        raise ValueError(f"{gt_boxes.shape[0]} ground-truth boxes but {gt_labels.shape[0]} labels")

    overlaps = box_iou(gt_boxes.to(anchors.dtype), center_to_corners(anchors))  # (G, A)
    best_gt_overlap, best_gt_idx = overlaps.max(dim=0)  # (A,)

    # Force-match each ground truth to its best still-free anchor. A Python loop over G (objects per image,
    # small) keeps the tie rule explicit and deterministic.
    best_gt_overlap = best_gt_overlap.clone()
    best_gt_idx = best_gt_idx.clone()
    claimed = torch.zeros(num_anchors, dtype=torch.bool, device=anchors.device)
    for gt_index in range(gt_boxes.shape[0]):
        row = overlaps[gt_index].masked_fill(claimed, -1.0)
        anchor_index = int(row.argmax())
        if row[anchor_index] <= 0:
            continue  # degenerate box: nothing to regress from
        claimed[anchor_index] = True
        best_gt_overlap[anchor_index] = 2.0
        best_gt_idx[anchor_index] = gt_index

    labels = gt_labels.to(torch.long)[best_gt_idx] + 1
    labels[best_gt_overlap <= threshold] = BACKGROUND
    matched = gt_boxes.to(anchors.dtype)[best_gt_idx]
    return matched, labels
