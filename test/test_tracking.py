"""IoUTracker: stable ids on synthetic sequences (pure numpy, no model).

Boxes are pixel ``(x1, y1, x2, y2)``; every object is a 40x40 box unless stated. Detections are shuffled each
frame so that no test can pass by relying on the detection order.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from underwater_detection.engine.tracking import IoUTracker
from underwater_detection.ops.box_overlap import iou_matrix

SIDE = 40.0


def _box(cx: float, cy: float, side: float = SIDE) -> np.ndarray:
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def _frame(boxes, labels=None, scores=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    labels = np.zeros(n, np.int64) if labels is None else np.asarray(labels, np.int64)
    scores = np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return boxes, scores, labels


def _track_single(tracker: IoUTracker, centers) -> list[int]:
    """Feed one object (``None`` = not detected that frame); the id it got each frame (``None`` when absent)."""
    ids = []
    for c in centers:
        if c is None:
            assert tracker.update(*_frame(np.zeros((0, 4)))).shape == (0,)
            ids.append(None)
        else:
            ids.append(int(tracker.update(*_frame([_box(*c)]))[0]))
    return ids


# ------------------------------------------------------------------------------ smooth motion
def _smooth_sequence(frames: int = 60, seed: int = 0):
    """Three same-class objects, ~3 px/frame in different directions; A and B cross 30 px apart."""
    rng = np.random.default_rng(seed)
    for t in range(frames):
        centers = [
            (60 + 3.0 * t, 240.0),  # A: right
            (200.0, 70 + 3.0 * t),  # B: down, passes just above A around t = 47
            (560 - 2.1 * t, 420 - 2.1 * t),  # C: up-left, 3 px/frame diagonally
        ]
        boxes = np.stack([_box(*c) for c in centers]) + np.clip(rng.normal(0, 0.7, (3, 4)), -1.5, 1.5)
        yield t, boxes.astype(np.float32), rng.uniform(0.5, 0.95, 3).astype(np.float32)


def test_sequence_really_crosses_near():
    closest = max(float(iou_matrix(b[:1], b[1:2])[0, 0]) for _, b, _ in _smooth_sequence())
    assert 0.05 < closest < 0.3  # A and B overlap at the crossing, but stay below the match threshold
    for _, boxes, _ in _smooth_sequence():
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 640).all() and (boxes[:, [1, 3]] <= 480).all()


@pytest.mark.parametrize("velocity_weight", [0.5, 1.0])
def test_ids_stable_under_smooth_motion_and_jitter(velocity_weight):
    tracker = IoUTracker(velocity_weight=velocity_weight)
    rng = np.random.default_rng(1)
    history: list[list[int]] = [[], [], []]  # per object
    for _, boxes, scores in _smooth_sequence():
        order = rng.permutation(3)
        ids = tracker.update(boxes[order], scores[order], np.zeros(3, np.int64))
        assert ids.dtype == np.int64 and ids.shape == (3,)
        for pos, obj in enumerate(order):
            history[obj].append(int(ids[pos]))
    per_object = [set(h) for h in history]
    assert all(len(s) == 1 for s in per_object), per_object  # no id ever changed
    assert sorted(s.pop() for s in per_object) == [1, 2, 3]  # three distinct ids, none -1
    assert len(tracker.tracks) == 3


# -------------------------------------------------------------------------------- missed frames
@pytest.mark.parametrize("max_missed", [0, 1, 2, 5])
def test_missing_up_to_max_missed_keeps_the_id_longer_gets_a_new_one(max_missed):
    tracker = IoUTracker(max_missed=max_missed)
    c = (100.0, 100.0)
    ids = _track_single(tracker, [c, c] + [None] * max_missed + [c])
    assert ids[0] == ids[1] == ids[-1] == 1
    ids = _track_single(tracker, [None] * (max_missed + 1) + [c, c])
    assert ids[-2] == ids[-1] == 2  # dropped after max_missed + 1 misses: a new id


def test_moving_object_missing_briefly_keeps_its_id():
    tracker = IoUTracker(max_missed=3)
    centers = [(100.0 + 3 * t, 200.0 - 2 * t) for t in range(12)]
    seen = [c if t not in (4, 5, 6) else None for t, c in enumerate(centers)]
    ids = _track_single(tracker, seen)
    assert {i for i in ids if i is not None} == {1}


def test_ids_are_never_reused():
    tracker = IoUTracker(max_missed=1)
    rng = np.random.default_rng(2)
    places = [(60.0 + 120 * i, 100.0 + 90 * (i % 2)) for i in range(5)]  # five well-separated spots
    owner: dict[int, tuple[int, int]] = {}  # id -> (spot, appearance) it was born for
    appearance = [0] * 5
    visible = [False] * 5
    last_new = 0
    for _ in range(80):
        for s in range(5):
            if rng.random() < 0.25:  # objects come and go; a 2+ frame absence ends the track
                if not visible[s]:
                    appearance[s] += 1
                visible[s] = not visible[s]
        spots = [s for s in range(5) if visible[s]]
        if not spots:
            tracker.update(*_frame(np.zeros((0, 4))))
            continue
        ids = tracker.update(*_frame([_box(*places[s]) for s in spots]))
        for s, i in zip(spots, ids.tolist()):
            assert i > 0
            if i not in owner:
                assert i > last_new  # new ids only increase
                last_new = i
                owner[i] = (s, appearance[s])
            assert owner[i][0] == s  # an id never moves to another object
    assert last_new > 10  # the sequence really did create and drop many tracks
    tracker.reset()
    assert tracker.tracks == []
    ids = tracker.update(*_frame([_box(*places[0])]))
    assert ids[0] == last_new + 1  # reset keeps counting: no id names two objects


def test_empty_frames_and_no_tracks():
    tracker = IoUTracker()
    ids = tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    assert ids.dtype == np.int64 and ids.shape == (0,)
    assert tracker.tracks == []


# ------------------------------------------------------------------------------ score and class
def test_below_min_score_gets_minus_one_and_no_track():
    tracker = IoUTracker(min_score=0.3)
    boxes, _, labels = _frame([_box(100, 100), _box(300, 100), _box(500, 100)])
    ids = tracker.update(boxes, np.array([0.9, 0.29, 0.3], np.float32), labels)
    assert ids.tolist() == [1, -1, 2]  # exactly min_score is tracked; below is not and takes no id
    assert len(tracker.tracks) == 2
    # a tracked object whose score dips for a frame is reported -1, and keeps its id when it comes back
    ids = tracker.update(boxes, np.array([0.1, 0.9, 0.9], np.float32), labels)
    assert ids.tolist() == [-1, 3, 2]
    ids = tracker.update(boxes, np.array([0.9, 0.9, 0.9], np.float32), labels)
    assert ids.tolist() == [1, 3, 2]


def test_class_aware_matching():
    tracker = IoUTracker()
    b = _box(100, 100)
    assert tracker.update(*_frame([b], labels=[0])).tolist() == [1]
    # another class at the same place does not inherit the id ...
    assert tracker.update(*_frame([b], labels=[1])).tolist() == [2]
    # ... and the original class comes back to its own track (missed one frame)
    assert tracker.update(*_frame([b, b + 1], labels=[1, 0])).tolist() == [2, 1]
    assert tracker.update(*_frame([b + 1, b], labels=[0, 1])).tolist() == [1, 2]


def test_class_agnostic_matching_inherits_the_id():
    tracker = IoUTracker(class_aware=False)
    b = _box(100, 100)
    assert tracker.update(*_frame([b], labels=[0])).tolist() == [1]
    assert tracker.update(*_frame([b], labels=[1])).tolist() == [1]
    assert tracker.tracks[0].label == 1  # the track takes the new label


# --------------------------------------------------------------------------- velocity prediction
def _consecutive_ious(centers) -> list[float]:
    return [float(iou_matrix(_box(*a)[None], _box(*b)[None])[0, 0]) for a, b in zip(centers, centers[1:])]


def test_fast_object_keeps_its_id_thanks_to_velocity():
    # Ramps up (a brand-new track has no velocity yet), then 24 px/frame on a 40 px box: consecutive IoU 0.25.
    xs = np.cumsum([100.0, 16.0] + [24.0] * 12)
    centers = [(float(x), 200.0) for x in xs]
    ious = _consecutive_ious(centers)
    assert ious[0] >= 0.3 and max(ious[1:]) < 0.3  # the previous box alone would not match
    assert set(_track_single(IoUTracker(velocity_weight=0.5), centers)) == {1}
    assert set(_track_single(IoUTracker(velocity_weight=1.0), centers)) == {1}
    without = _track_single(IoUTracker(velocity_weight=0.0), centers)
    assert len(set(without)) > 1  # with no velocity term the same object gets new ids


def test_constant_velocity_through_a_gap_keeps_its_id():
    # 8 px/frame, undetected for 3 frames: 32 px from the last seen box (IoU 0.11), but the track coasts along.
    centers = [(100.0 + 8 * t, 150.0) for t in range(14)]
    seen = [c if t not in (5, 6, 7) else None for t, c in enumerate(centers)]
    assert _consecutive_ious([centers[4], centers[8]])[0] < 0.3
    assert {i for i in _track_single(IoUTracker(max_missed=3), seen) if i is not None} == {1}
    without = _track_single(IoUTracker(max_missed=3, velocity_weight=0.0), seen)
    assert without[4] == 1 and without[8] != 1


def test_one_detection_goes_to_one_track_the_best_overlap():
    tracker = IoUTracker(max_missed=2)
    a, b = _box(100, 100), _box(110, 100)  # two same-class tracks 10 px apart
    assert tracker.update(*_frame([a, b])).tolist() == [1, 2]
    # one detection overlapping both (IoU 0.90 with track 1, 0.67 with track 2): track 1 takes it
    assert tracker.update(*_frame([_box(102, 100)])).tolist() == [1]
    assert sorted((t.track_id, t.missed) for t in tracker.tracks) == [(1, 0), (2, 1)]
    assert tracker.update(*_frame([_box(110, 100), _box(102, 100)])).tolist() == [2, 1]


# ------------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize(
    "options",
    [
        {"iou_threshold": 0.0},
        {"iou_threshold": -0.1},
        {"iou_threshold": 1.01},
        {"iou_threshold": math.nan},
        {"max_missed": -1},
    ],
)
def test_invalid_arguments_rejected(options):
    (key,) = options
    with pytest.raises(ValueError, match=key):
        IoUTracker(**options)


def test_boundary_arguments_accepted():
    IoUTracker(iou_threshold=1.0, max_missed=0, min_score=0.0, velocity_weight=0.0)
    with pytest.raises(TypeError):
        IoUTracker(iou_treshold=0.3)  # a typo is an error, not an ignored option


@pytest.mark.parametrize(
    "options",
    [
        {"min_score": math.nan},
        {"min_score": 1.5},
        {"velocity_weight": math.nan},
        {"velocity_weight": -0.5},
        {"max_missed": 2.5},
    ],
)
def test_other_invalid_arguments_rejected(options):
    (key,) = options
    with pytest.raises(ValueError, match=key):
        IoUTracker(**options)
