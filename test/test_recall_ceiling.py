"""The recall ceiling (engine/recall_ceiling.py) on hand-built images whose answer is known box by box."""
from __future__ import annotations

import math

import numpy as np
import pytest

from script_loading import load_script
from underwater_detection.engine.recall_ceiling import grouped_recall, object_records, recall_at
from underwater_detection.engine.voc_eval import GroundTruth, Prediction


def _image():
    # three objects: a found 10x10 (class 0), a 40x40 boxed only by the wrong class (class 1), a difficult one
    gt = GroundTruth(boxes=np.array([[0, 0, 10, 10], [50, 50, 90, 90], [100, 100, 120, 120]], float),
                     labels=np.array([0, 1, 0]), difficult=np.array([False, False, True]))
    pred = Prediction(boxes=np.array([[0, 0, 10, 9], [0, 0, 10, 10], [50, 50, 90, 90], [100, 100, 120, 120]], float),
                      scores=np.array([0.9, 0.2, 0.8, 0.7]), labels=np.array([0, 0, 0, 0]))
    return pred, gt


def test_each_object_gets_the_best_same_class_score_at_iou_half_and_difficult_ones_are_left_out():
    pred, gt = _image()
    records = object_records([pred], [gt], [np.array([1.0, 0.45, 0.1])])
    assert [(r.label, r.size, r.visible, r.best_score) for r in records] == [(0, 10.0, 1.0, 0.9), (1, 40.0, 0.45, 0.0)]


def test_recall_counts_objects_boxed_at_or_above_the_floor_and_never_counts_an_unboxed_one():
    pred, gt = _image()
    records = object_records([pred], [gt])
    assert recall_at(records, 0.9) == 0.5
    assert recall_at(records, 0.95) == 0.0
    assert recall_at(records, 0.0) == 0.5  # the wrong-class object has no hit even at floor 0
    assert math.isnan(records[0].visible)


def test_a_box_below_iou_half_is_no_hit():
    gt = GroundTruth(boxes=np.array([[0, 0, 10, 10]], float), labels=np.array([2]))
    pred = Prediction(boxes=np.array([[5, 0, 15, 10]], float), scores=np.array([0.99]), labels=np.array([2]))  # IoU 1/3
    assert object_records([pred], [gt])[0].best_score == 0.0


def test_grouped_recall_bins_by_attribute_and_skips_empty_bins():
    pred, gt = _image()
    records = object_records([pred, pred], [gt, gt], [np.array([1.0, 0.45, 0.1]), np.array([0.35, 0.9, 0.1])])
    rows = grouped_recall(records, "visible", [0.3, 0.5, 0.8, 1.01], [0.5])
    assert [(r["lo"], r["objects"], r["recall@0.5"]) for r in rows] == [(0.3, 2, 0.5), (0.8, 2, 0.5)]
    assert sum(r["share"] for r in rows) == 1.0
    by_size = grouped_recall(records, "size", [0, 24, 1e9], [0.5])
    assert [(r["objects"], r["recall@0.5"]) for r in by_size] == [(2, 1.0), (2, 0.0)]


def test_mismatched_inputs_fail_loudly():
    pred, gt = _image()
    with pytest.raises(ValueError, match="predictions"):
        object_records([pred], [gt, gt])
    with pytest.raises(ValueError, match="visible fractions"):
        object_records([pred], [gt], [np.array([1.0])])


def test_diagnose_misses_lines_each_visible_fraction_up_with_its_box(tmp_path):
    """Frames listed out of order, string image ids, a still image and an image whose annotations lack the field:
    each box's visible fraction (here x1 / 1000) must reach that box, and an unknown image gets None."""
    import json

    import cv2

    from underwater_detection.data.datasets import load_dataset

    (tmp_path / "images").mkdir()
    images, annotations = [], []
    layout = [("7", 1, 2), ("3", 1, 0), ("5", 1, 1), ("11", None, None), ("13", 2, 0)]
    for n, (image_id, video, frame) in enumerate(layout):
        name = f"images/{image_id}.jpg"
        cv2.imwrite(str(tmp_path / name), np.zeros((60, 80, 3), np.uint8))
        entry = {"id": image_id, "file_name": name, "width": 80, "height": 60}
        if video is not None:
            entry.update(video_id=video, frame_id=frame)
        images.append(entry)
        for b in range(n % 3 + 1):
            x = 2 + 10 * b + n
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": [x, 5, 6, 6]}
            if image_id != "13":
                ann["visibility"] = x / 1000
            annotations.append(ann)
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "scallop"}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    dataset = load_dataset(tmp_path, class_names=["scallop"])
    script = load_script("diagnose_misses")
    visible = script.visible_fractions(tmp_path / "annotations.json", dataset)
    checked = 0
    for i in range(len(dataset)):
        boxes = dataset.annotations(i).boxes
        if str(dataset.annotations(i).image_id) == "13":
            assert visible[i] is None
            continue
        np.testing.assert_allclose(visible[i], boxes[:, 0] / 1000)
        checked += len(boxes)
    assert checked == sum(n % 3 + 1 for n in range(4))
    assert script.visible_fractions(tmp_path / "missing.json", dataset) == [None] * len(dataset)
