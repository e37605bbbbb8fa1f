"""Motion IoU of ground-truth tracks: the statistic the k-sweep is read against."""
from __future__ import annotations

import json
import math

import pytest

from underwater_detection.engine.track_motion import format_motion, track_motion, track_motion_of_file, video_fps


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


def test_hand_computed_iou_per_gap():
    # track 1 moves 5 px right per frame: gap 1 overlaps 5x10 of a 150 union -> 1/3; gap 2 -> 0.
    # track 2 is static -> 1 at every gap. Medians over pairs: gap 1 has 3 pairs per track.
    coco = _coco({1: [(0, 0), (5, 0), (10, 0), (15, 0)], 2: [(40, 40)] * 4})
    g1, g2, g3 = track_motion(coco, [1, 2, 3])
    assert g1.pairs == 6 and math.isclose(g1.median_iou, (1 / 3 + 1) / 2)
    assert math.isclose(g1.fraction_below_half, 0.5)
    assert g2.pairs == 4 and math.isclose(g2.median_iou, 0.5) and math.isclose(g2.fraction_below_half, 0.5)
    assert g3.pairs == 2 and g3.fraction_below_half == 0.5


def test_difficult_boxes_do_not_count():
    coco = _coco({1: [(0, 0), (5, 0), (10, 0)]}, difficult_frames={1})
    (g1,) = track_motion(coco, [1])
    assert g1.pairs == 0 and math.isnan(g1.median_iou)
    (g2,) = track_motion(coco, [2])
    assert g2.pairs == 1 and g2.median_iou == 0.0


def test_tracks_do_not_pair_across_videos():
    coco = _coco({1: [(0, 0), (0, 0)]})
    coco["images"][1]["video_id"] = 8  # same track id, other video: not the same object
    assert track_motion(coco, [1])[0].pairs == 0


def test_data_without_tracks_is_an_error_not_a_number():
    coco = _coco({1: [(0, 0), (0, 0)]})
    for ann in coco["annotations"]:
        del ann["track_id"]
    with pytest.raises(ValueError, match="track_id"):
        track_motion(coco, [1])
    with pytest.raises(ValueError, match="gap"):
        track_motion(_coco({1: [(0, 0)]}), [0])


def test_file_helpers(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(_coco({1: [(0, 0), (5, 0)]}, fps=30.0)))
    (g1,) = track_motion_of_file(path, [1])
    assert math.isclose(g1.median_iou, 1 / 3)
    assert video_fps(path) == 30.0
    assert "1 frames later (0.03 s at 30 FPS): median IoU 0.33, 100% of 1 pairs below 0.5" in format_motion([g1], 30.0)
    assert track_motion_of_file(tmp_path / "missing.json", [1]) is None
    voc_list = tmp_path / "test.txt"
    voc_list.write_text("000001\n")
    assert track_motion_of_file(voc_list, [1]) is None and video_fps(voc_list) is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert track_motion_of_file(broken, [1]) is None and video_fps(broken) is None


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
