"""Box overlap (IoU) in numpy, for the code paths that hold boxes as arrays rather than tensors: evaluation,
tracking, augmentation crops, grasp-target locking, propagation-motion statistics.

One implementation so that every consumer agrees on the edge cases: a degenerate box (zero or negative width
or height) overlaps nothing, two boxes whose union is empty overlap 0 (never NaN), and a wrongly shaped
array is an error rather than boxes read from the wrong numbers. The torch twin used by
matching and NMS is ``ops.box_coding.box_iou``; ``test_box_overlap`` holds the two to the same answers."""
from __future__ import annotations

import numpy as np


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def _as_boxes(boxes: object) -> np.ndarray:
    """One box ``(4,)`` or ``(N, 4)`` boxes as ``(N, 4)`` float64; any other shape is a caller's bug, not boxes."""
    array = np.asarray(boxes, np.float64)
    if array.shape == (4,):
        return array[None]
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be (x1, y1, x2, y2) or an (N, 4) array, got shape {array.shape}")
    return array


def iou_matrix(a: object, b: object) -> np.ndarray:
    """IoU of every corner box ``(x1, y1, x2, y2)`` in ``a`` with every one in ``b``: shape ``(len(a), len(b))``."""
    a, b = _as_boxes(a), _as_boxes(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def paired_iou(a: object, b: object) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]``: the diagonal of ``iou_matrix`` without its N^2 cost."""
    a, b = _as_boxes(a), _as_boxes(b)
    if len(a) != len(b):
        raise ValueError(f"paired_iou needs as many boxes in a as in b, got {len(a)} and {len(b)}")
    lt = np.maximum(a[:, :2], b[:, :2])
    rb = np.minimum(a[:, 2:], b[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    union = _area(a) + _area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
