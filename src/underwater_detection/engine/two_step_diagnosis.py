"""Which step of a two-step detector (RefineDet, DRNet) loses an object: the anchor refinement or the detection.

mAP says *that* a model misses objects, not *where*. For each non-difficult ground-truth box this module
measures, from one forward pass:

* ``anchor_iou``: best IoU of an original anchor (the one-step baseline's starting point);
* ``refined_iou``: best IoU of a refined anchor ``decode(ar, anchors)`` (the ARM's output);
* ``odm_positives``: refined anchors with IoU >= 0.5, i.e. how many ODM training positives the object gets:
  zero means the ARM left the ODM nothing to learn from;
* ``detected_iou``: best IoU of a decoded final box that scores >= ``score_floor`` for the object's class:
  how well the boxes the model is confident about sit on the object;
* ``class_score``: best score for the object's class among final boxes with IoU >= 0.5: low means the
  boxes are in the right place but the classifier does not fire.

A healthy ARM with a low ``detected_iou`` puts the fault in the detection step (e.g. RefineDet's plain
convolution reading features at the original anchor position while its anchor has moved, the misalignment
DRNet's anchor-offset detection addresses). Objects are bucketed by COCO's size rule on their area in the
original image, so the buckets line up with APs / APm / APl.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..ops.box_coding import box_iou, center_to_corners, decode_two_step, refine_anchors
from ..ops.outputs import HeadOutputs
from ..ops.postprocess import class_scores

SIZE_BUCKETS = ("small", "medium", "large")  # COCO: area < 32^2, < 96^2, larger (original image pixels)
POSITIVE_IOU = 0.5
_MEDIAN_FIELDS = ("anchor_iou", "refined_iou", "odm_positives", "detected_iou", "class_score")


@dataclass(frozen=True)
class ObjectDiagnosis:
    size: str
    anchor_iou: float
    refined_iou: float
    odm_positives: int
    detected_iou: float
    class_score: float


def size_bucket(area_px: float) -> str:
    return "small" if area_px < 32**2 else "medium" if area_px < 96**2 else "large"


def diagnose_image(
    outputs: HeadOutputs,
    priors: torch.Tensor,
    variances: tuple[float, float],
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    image_size: tuple[int, int],
    naf_threshold: float | None = None,
    score_floor: float = 0.1,
) -> list[ObjectDiagnosis]:
    """One image's objects. ``outputs``: a batch of one with ARM offsets; ``gt_boxes`` pixel corners in the
    original ``image_size`` = (height, width); ``gt_labels`` 0-based class indices."""
    if outputs.arm_loc is None:
        raise ValueError("a two-step diagnosis needs ARM offsets: this model regresses in one step (SSD4s)")
    if outputs.loc.shape[0] != 1:
        raise ValueError(f"diagnose one image at a time, got a batch of {outputs.loc.shape[0]}")
    if len(gt_boxes) != len(gt_labels):
        raise ValueError(f"{len(gt_boxes)} boxes but {len(gt_labels)} labels")
    if len(gt_boxes) == 0:
        return []
    h, w = image_size
    priors = priors.float()
    arm_loc, loc = outputs.arm_loc[0].float(), outputs.loc[0].float()
    gt = torch.as_tensor(np.asarray(gt_boxes, np.float32) / np.array([w, h, w, h], np.float32))
    refined = center_to_corners(refine_anchors(arm_loc, priors, variances))
    final = decode_two_step(loc, arm_loc, priors, variances)
    scores = class_scores(outputs, naf_threshold)[0].float()  # (A, classes), background excluded
    iou_anchor = box_iou(gt, center_to_corners(priors))
    iou_refined = box_iou(gt, refined)
    iou_final = box_iou(gt, final)
    found = []
    for g, label in enumerate(np.asarray(gt_labels, np.int64)):
        score = scores[:, int(label)]
        confident = score >= score_floor
        on_target = iou_final[g] >= POSITIVE_IOU
        x1, y1, x2, y2 = (float(v) for v in gt_boxes[g])
        found.append(ObjectDiagnosis(
            size=size_bucket((x2 - x1) * (y2 - y1)),
            anchor_iou=float(iou_anchor[g].max()),
            refined_iou=float(iou_refined[g].max()),
            odm_positives=int((iou_refined[g] >= POSITIVE_IOU).sum()),
            detected_iou=float(iou_final[g][confident].max()) if confident.any() else 0.0,
            class_score=float(score[on_target].max()) if on_target.any() else 0.0,
        ))
    return found


def summarise(objects: Iterable[ObjectDiagnosis]) -> dict[str, dict[str, Any]]:
    """Per size bucket (and ``all``): count, medians, and the share of objects with at least one ODM positive."""
    objects = list(objects)
    table: dict[str, dict[str, Any]] = {}
    for bucket in (*SIZE_BUCKETS, "all"):
        rows = [o for o in objects if bucket in ("all", o.size)]
        if not rows:
            continue
        medians = {f: float(np.median([getattr(o, f) for o in rows])) for f in _MEDIAN_FIELDS}
        table[bucket] = {"objects": len(rows), **medians,
                         "with_odm_positive": float(np.mean([o.odm_positives > 0 for o in rows]))}
    return table


def diagnose_checkpoint(
    path: str, dataset: Any, indices: Sequence[int], score_floor: float = 0.1
) -> list[ObjectDiagnosis]:
    """A checkpoint's per-frame forward pass (RG + RD on every frame for TRNet/TDRNet) on ``indices``, on CPU."""
    from ..data.transforms import image_to_tensor
    from ..models.checkpoint import load_model
    from ..models.registry import preprocess_config, priors_for

    model, ckpt = load_model(path)
    spec = ckpt.spec
    preprocess = preprocess_config(spec, model)
    priors = priors_for(spec, "cpu")
    objects: list[ObjectDiagnosis] = []
    for i in indices:
        sample = dataset[i]
        keep = ~np.asarray(sample.difficult, bool)
        x = image_to_tensor(sample.image, spec.input_size, preprocess, "rgb")[None]
        with torch.inference_mode():
            outputs = model(x)
        objects += diagnose_image(
            outputs, priors, spec.variances, sample.boxes[keep], sample.labels[keep], sample.image.shape[:2],
            getattr(model, "naf_threshold", None), score_floor,
        )
    return objects
