"""Motion IoU of ground-truth tracks: the statistic the k-sweep is read against."""
from __future__ import annotations

import json
import math

import pytest

from underwater_detection.data.datasets import load_dataset
from underwater_detection.engine.benchmark_results import FrameStep, SequenceSubset
from underwater_detection.engine.track_motion import format_motion, motion_or_none, track_motion


def _coco(moves: dict[int, list[tuple[float, float]]], difficult_frames: set[int] = frozenset(), fps: float = 10.0):
    """One video; each track id maps to its box top-left per frame (10 x 10 boxes)."""
    frames = max(len(v) for v in moves.values())
    images = [{"id": 100 + f, "video_id": 7, "frame_id": f, "file_name": f"{f}.jpg", "width": 64, "height": 64}
              for f in range(frames)]
    anns = []
    for track, corners in moves.items():
        for f, (x, y) in enumerate(corners):
            anns.append({"id": len(anns) + 1, "image_id": 100 + f, "category_id": 1, "bbox": [x, y, 10, 10],
                         "track_id": track, "difficult": int(f in difficult_frames)})
    return {"images": images, "annotations": anns, "videos": [{"id": 7, "fps": fps}],
            "categories": [{"id": 1, "name": "scallop"}]}


def _dataset(coco: dict, folder):
    """The COCO dict through the project's loader (motion is measured on what evaluation loads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "annotations.json").write_text(json.dumps(coco))
    return load_dataset(folder / "annotations.json")


def test_hand_computed_iou_per_gap(tmp_path):
    # track 1 moves 5 px right per frame: gap 1 overlaps 5x10 of a 150 union -> 1/3; gap 2 -> 0.
    # track 2 is static -> 1 at every gap. Medians over pairs: gap 1 has 3 pairs per track.
    coco = _coco({1: [(0, 0), (5, 0), (10, 0), (15, 0)], 2: [(40, 40)] * 4})
    g1, g2, g3 = track_motion(_dataset(coco, tmp_path), [1, 2, 3])
    assert g1.pairs == 6 and math.isclose(g1.median_iou, (1 / 3 + 1) / 2)
    assert math.isclose(g1.fraction_below_half, 0.5)
    assert g2.pairs == 4 and math.isclose(g2.median_iou, 0.5) and math.isclose(g2.fraction_below_half, 0.5)
    assert g3.pairs == 2 and g3.fraction_below_half == 0.5


def test_median_not_mean(tmp_path):
    # two static tracks and one moving 5 px per frame: gap 1 pairs are 1, 1, 1, 1, 1/3, 1/3 -> median 1, mean 7/9
    coco = _coco({1: [(0, 0), (5, 0), (10, 0)], 2: [(40, 40)] * 3, 3: [(20, 40)] * 3})
    (g1,) = track_motion(_dataset(coco, tmp_path), [1])
    assert g1.pairs == 6 and g1.median_iou == 1.0 and math.isclose(g1.fraction_below_half, 2 / 6)


def test_gaps_count_positions_not_frame_numbers(tmp_path):
    # annotated every 15th frame: frame ids 0, 15, 30 are positions 0, 1, 2 (a temporal detector's k counts those)
    coco = _coco({1: [(0, 0), (5, 0), (10, 0)]})
    for image in coco["images"]:
        image["frame_index"] = 15 * image.pop("frame_id")  # the alias datasets.py accepts
    dataset = _dataset(coco, tmp_path)
    assert [dataset.annotations(i).frame_index for i in dataset.sequences()[7]] == [0, 15, 30]
    g1, g2 = track_motion(dataset, [1, 2])
    assert g1.pairs == 2 and math.isclose(g1.median_iou, 1 / 3) and g2.pairs == 1
    # a subset (every other position) re-ranks: frames 0 and 30 become neighbours
    (sub,) = track_motion(FrameStep(dataset, 2), [1])
    assert sub.pairs == 1 and sub.median_iou == 0.0


@pytest.mark.parametrize("flag", ["difficult", "ignore", "iscrowd"])
def test_boxes_evaluation_ignores_do_not_count(flag, tmp_path):
    coco = _coco({1: [(0, 0), (5, 0), (10, 0)]})
    coco["annotations"][1]["difficult"] = 0
    coco["annotations"][1][flag] = 1
    dataset = _dataset(coco, tmp_path)
    (g1,) = track_motion(dataset, [1])
    assert g1.pairs == 0 and g1.median_iou is None and g1.fraction_below_half is None
    assert "no pairs" in format_motion([g1])
    assert json.loads(json.dumps(g1.to_dict()))["median_iou"] is None  # valid JSON, no bare NaN
    (g2,) = track_motion(dataset, [2])
    assert g2.pairs == 1 and g2.median_iou == 0.0


def test_tracks_do_not_pair_across_videos(tmp_path):
    coco = _coco({1: [(0, 0), (0, 0)]})
    coco["images"][1]["video_id"] = 8  # same track id, other video: not the same object
    assert track_motion(_dataset(coco, tmp_path), [1])[0].pairs == 0


def test_data_without_tracks_is_an_error_not_a_number(tmp_path):
    coco = _coco({1: [(0, 0), (0, 0)]})
    for ann in coco["annotations"]:
        del ann["track_id"]
    no_tracks = _dataset(coco, tmp_path / "a")
    with pytest.raises(ValueError, match="track_id"):
        track_motion(no_tracks, [1])
    assert motion_or_none(no_tracks, [1]) is None  # the benchmark goes on without a motion figure
    with pytest.raises(ValueError, match="gap"):
        track_motion(_dataset(_coco({1: [(0, 0)]}), tmp_path / "b"), [0])


def test_frame_rate_and_report_line(tmp_path):
    dataset = load_dataset(_dataset(_coco({1: [(0, 0), (5, 0)]}, fps=30.0), tmp_path / "a").json_path.parent)
    (g1,) = motion_or_none(dataset, [1])  # a folder means its annotations.json
    assert math.isclose(g1.median_iou, 1 / 3)
    assert dataset.frame_rate() == 30.0
    assert "1 frame later (0.03 s at 30 FPS): median IoU 0.33, 100% of 1 pairs below 0.5" in format_motion([g1], 30.0)
    mixed = _coco({1: [(0, 0)]})
    mixed["videos"].append({"id": 8, "fps": 25.0})
    assert _dataset(mixed, tmp_path / "b").frame_rate() is None  # no single camera rate to quote
    bad = _coco({1: [(0, 0)]})
    bad["videos"] = [{"id": 7, "fps": "fast"}]
    assert _dataset(bad, tmp_path / "c").frame_rate() is None


def test_frame_step_and_subsets(tmp_path):
    import cv2
    import numpy as np

    coco = _coco({1: [(0, 0), (5, 0), (10, 0), (15, 0), (20, 0)]})
    for image in coco["images"]:
        cv2.imwrite(str(tmp_path / image["file_name"]), np.zeros((64, 64, 3), np.uint8))
    dataset = _dataset(coco, tmp_path)
    stepped = FrameStep(dataset, 2)
    assert len(stepped) == 3 and [stepped[i].frame_index for i in stepped.sequences()[7]] == [0, 2, 4]
    assert stepped.frame_rate() == 5.0 and SequenceSubset(dataset, 1).frame_rate() == 10.0
    (g1,) = track_motion(stepped, [1])  # 10 px apart at half the frame rate: no overlap
    assert g1.pairs == 2 and g1.median_iou == 0.0
    (g4,) = track_motion(FrameStep(SequenceSubset(dataset, 1), 4), [1])  # frames 0 and 4 become neighbours
    assert g4.pairs == 1 and g4.median_iou == 0.0
    with pytest.raises(ValueError, match="frame step"):
        FrameStep(dataset, 0)


def test_results_report_carries_the_motion(tmp_path):
    from underwater_detection.engine.benchmark_results import BenchmarkResults, write_outputs
    from underwater_detection.engine.track_motion import GapMotion

    res = BenchmarkResults(data="split", motion=[GapMotion(7, 20, 0.25, 0.75)], data_fps=10.0)
    write_outputs(res, tmp_path, {"command": "test"})
    assert "- 7 frames later (0.70 s at 10 FPS): median IoU 0.25, 75% of 20 pairs below 0.5" in \
        (tmp_path / "results.md").read_text()
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["data_fps"] == 10.0 and payload["motion"] == [
        {"gap": 7, "pairs": 20, "median_iou": 0.25, "fraction_below_half": 0.75}]
