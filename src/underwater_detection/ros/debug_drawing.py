"""Boxes drawn on the camera image for ``~/debug_image`` (OpenCV only, no rclpy).

The picture is the decoded input (BGR) with nothing but the detections on it, so a viewer sees exactly the
pixels the detector was given; one colour per class, the label ``name score #track``.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# BGR, distinct under water-blue casts
_PALETTE = ((0, 215, 255), (60, 60, 255), (255, 128, 0), (200, 0, 200), (0, 200, 0), (255, 255, 255))


def draw_detections(image_bgr: np.ndarray, detections: Any) -> np.ndarray:
    """A copy of ``image_bgr`` with ``detections`` (boxes in its pixels) drawn on it."""
    canvas = np.array(image_bgr, dtype=np.uint8, copy=True)
    h, w = canvas.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    font_scale = max(0.35, min(h, w) / 900)
    for box, score, label, track in zip(detections.boxes, detections.scores, detections.labels,
                                        detections.track_ids):
        colour = _PALETTE[int(label) % len(_PALETTE)]
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        text = f"{detections.class_names[int(label)]} {float(score):.2f}" + (f" #{int(track)}" if track >= 0 else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(h - 1, y2 + th + 2)
        cv2.rectangle(canvas, (x1, ty - th - base), (x1 + tw, ty + base // 2), colour, -1)
        cv2.putText(canvas, text, (x1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return canvas
