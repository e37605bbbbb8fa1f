"""Grasp-target selection (engine.grasp_selection): eligibility, the utility rule, hysteresis, identity by track
id / IoU, timeouts (nothing stale) and the bearing ray. Pure Python: no ROS, no model."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from underwater_detection.engine.grasp_selection import (
    GraspCandidate, GraspConfig, GraspSelector, bearing_ray,
)
from underwater_detection.ops.box_overlap import iou_matrix

W, H = 640, 480
SIZE = (W, H)


def cand(cx: float, cy: float, cls: str = "sea_urchin", score: float = 0.9, track: str = "", size: float = 60.0):
    return GraspCandidate((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), cls, score, track)


# --------------------------------------------------------------------------------------------- rule
def test_eligibility_filters_class_score_and_size():
    sel = GraspSelector(GraspConfig(graspable_classes=("sea_urchin",), min_score=0.5, min_size_px=20))
    ok = cand(320, 400)
    pool = [ok, cand(100, 100, cls="starfish"), cand(200, 200, score=0.49), cand(300, 300, size=19),
            cand(320, 400, cls="Sea urchin", track="x")]  # names are matched after normalisation
    assert sel.eligible(pool) == [ok, pool[-1]]


def test_utility_matches_the_documented_formula():
    cfg = GraspConfig(graspable_classes=("sea_cucumber", "sea_urchin", "scallop"), weight_priority=1, weight_score=2,
                      weight_size=0.5, weight_reach=1.5, size_saturation=0.2, reach_falloff=0.5,
                      reach_area=(0.3, 0.55, 0.7, 1.0))
    sel = GraspSelector(cfg)
    c = GraspCandidate((10.0, 20.0, 50.0, 100.0), "sea_urchin", 0.8, "1")  # centre (30, 60), 40 x 80
    priority = (3 - 1) / 3
    size = min(1.0, math.sqrt(40 * 80 / (W * H)) / 0.2)
    dx, dy = 0.3 * W - 30, 0.55 * H - 60  # left of and above the reach rectangle
    reach = max(0.0, 1 - math.hypot(dx, dy) / math.hypot(W, H) / 0.5)
    expected = (1 * priority + 2 * 0.8 + 0.5 * size + 1.5 * reach) / (1 + 2 + 0.5 + 1.5)
    assert sel.utility(c, SIZE) == pytest.approx(expected, abs=1e-12)
    inside = GraspCandidate((300.0, 350.0, 340.0, 430.0), "sea_urchin", 0.8, "2")  # centre in the reach area
    assert sel.utility(inside, SIZE) == pytest.approx((priority + 1.6 + 0.5 * size + 1.5) / 5, abs=1e-12)


def test_each_term_orders_candidates_as_documented():
    sel = GraspSelector(GraspConfig())
    base = cand(320, 400, "sea_urchin", 0.8)
    assert sel.utility(cand(320, 400, "sea_cucumber", 0.8), SIZE) > sel.utility(base, SIZE)  # priority
    assert sel.utility(cand(320, 400, "sea_urchin", 0.95), SIZE) > sel.utility(base, SIZE)  # score
    assert sel.utility(cand(320, 400, "sea_urchin", 0.8, size=90), SIZE) > sel.utility(base, SIZE)  # size
    assert sel.utility(cand(40, 40, "sea_urchin", 0.8), SIZE) < sel.utility(base, SIZE)  # reach
    u = [sel.utility(c, SIZE) for c in (base, cand(40, 40), cand(600, 60, "scallop", 0.5, size=10))]
    assert all(0.0 <= x <= 1.0 for x in u)


def test_best_candidate_is_acquired_at_once():
    sel = GraspSelector(GraspConfig())
    far, near = cand(60, 60, track="1"), cand(320, 420, track="2")
    d = sel.update([far, near], now=0.0, image_size=SIZE)
    assert d.event == "acquired" and d.target == near and d.candidates == 2
    assert sel.update([], now=0.0, image_size=SIZE).event == "held"
    assert GraspSelector().update([cand(1, 1, cls="starfish")], 0.0, SIZE).event == "none"


# --------------------------------------------------------------------------------------------- hysteresis
def test_target_is_kept_by_track_id_while_a_slightly_better_object_appears():
    cfg = GraspConfig(switch_margin=0.15, switch_frames=3)
    sel = GraspSelector(cfg)
    sel.update([cand(300, 420, score=0.80, track="7")], 0.0, SIZE)
    for i in range(1, 20):
        # the target moves across the image (box changes a lot) but keeps track id 7; the rival is a bit better
        target = cand(300 + 10 * i, 420 - 5 * i, score=0.80, track="7")
        rival = cand(320, 430, score=0.95, track="8")
        d = sel.update([rival, target], i * 0.1, SIZE)
        assert sel.utility(rival, SIZE) > sel.utility(target, SIZE)  # a better object, but within the margin
        assert d.event == "kept" and d.target.track_id == "7" and d.target.box == target.box


def test_clearly_better_object_wins_only_after_switch_frames_consecutive_updates():
    cfg = GraspConfig(switch_margin=0.1, switch_frames=3, weight_size=0, weight_priority=0)
    sel = GraspSelector(cfg)
    weak = cand(60, 60, score=0.55, track="1")
    strong = cand(320, 420, score=0.99, track="2")
    sel.update([weak], 0.0, SIZE)
    events = [sel.update([weak, strong], 0.1 * i, SIZE) for i in (1, 2)]
    assert [e.event for e in events] == ["kept", "kept"] and all(e.target.track_id == "1" for e in events)
    sel.update([weak], 0.3, SIZE)  # the challenger vanishes once: its count starts again
    events = [sel.update([weak, strong], 0.1 * i, SIZE) for i in (4, 5, 6)]
    assert [e.event for e in events] == ["kept", "kept", "switched"]
    assert events[-1].target.track_id == "2"
    assert sel.update([weak, strong], 0.7, SIZE).target.track_id == "2"  # and it stays


def test_alternating_challengers_never_accumulate():
    sel = GraspSelector(GraspConfig(switch_margin=0.05, switch_frames=2, weight_size=0, weight_priority=0))
    weak = cand(60, 60, score=0.55, track="1")
    sel.update([weak], 0.0, SIZE)
    for i in range(1, 12):
        rival = cand(320, 420, score=0.99, track="a" if i % 2 else "b")
        assert sel.update([weak, rival], 0.1 * i, SIZE).target.track_id == "1"


def test_untracked_detections_keep_the_target_by_class_and_iou():
    sel = GraspSelector(GraspConfig(iou_match=0.3))
    sel.update([cand(320, 420, track="")], 0.0, SIZE)
    moved = cand(330, 425, track="")  # IoU with the last box ~0.6
    other = cand(330, 425, cls="scallop", track="")  # same place, other class: not the target
    d = sel.update([other, moved], 0.1, SIZE)
    assert d.event == "kept" and d.target == moved
    assert iou_matrix(moved.box, cand(320, 420).box)[0, 0] > 0.3


def test_unseen_target_is_held_then_replaced_by_a_steady_other_object():
    sel = GraspSelector(GraspConfig(switch_frames=3, target_timeout_s=5.0))
    sel.update([cand(320, 420, track="1")], 0.0, SIZE)
    d1 = sel.update([cand(100, 100, track="2")], 0.1, SIZE)
    d2 = sel.update([cand(100, 100, track="2")], 0.2, SIZE)
    assert (d1.event, d1.target, d2.event, d2.target) == ("held", None, "held", None)  # nothing stale published
    assert sel.target.track_id == "1"  # the lock is kept
    d3 = sel.update([cand(100, 100, track="2")], 0.3, SIZE)
    assert d3.event == "switched" and d3.target.track_id == "2"


def test_target_reappearing_before_the_timeout_is_kept():
    sel = GraspSelector(GraspConfig(switch_frames=3, target_timeout_s=1.0))
    sel.update([cand(320, 420, track="1")], 0.0, SIZE)
    assert sel.update([], 0.5, SIZE).event == "held"
    d = sel.update([cand(322, 421, track="1"), cand(100, 100, track="2")], 0.9, SIZE)
    assert d.event == "kept" and d.target.track_id == "1"


def test_no_target_after_the_timeout_without_a_fresh_detection():
    sel = GraspSelector(GraspConfig(target_timeout_s=0.5))
    sel.update([cand(320, 420, track="1")], 10.0, SIZE)
    assert sel.current(10.4).track_id == "1"
    assert sel.current(10.51) is None and sel.target is None  # checked by time alone (the node's timer)
    sel.update([cand(320, 420, track="1")], 20.0, SIZE)
    d = sel.update([cand(320, 420, cls="starfish", track="9")], 20.6, SIZE)  # only ineligible detections arrive
    assert d.event == "lost" and d.target is None and sel.current(20.6) is None
    d = sel.update([cand(320, 420, track="1")], 21.0, SIZE)  # the object is seen again: a fresh acquisition
    assert d.event == "acquired"



def test_clock_jumping_backwards_drops_the_target():
    """A looping bag (use_sim_time, /clock restarts) or a stepped system clock: the target last seen at t = 30 s
    must not be held as fresh for the next 30 s of a clock that restarted at 0."""
    sel = GraspSelector(GraspConfig(target_timeout_s=1.0))
    sel.update([cand(320, 420, track="1")], 30.0, SIZE)
    assert sel.current(0.2) is None and sel.target is None
    sel.update([cand(320, 420, track="1")], 30.0, SIZE)
    d = sel.update([], 0.1, SIZE)
    assert d.event == "lost" and d.target is None and sel.target is None


# --------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("field,value", [
    ("min_score", 1.5), ("min_score", float("nan")), ("switch_frames", 0), ("switch_frames", 1.5),
    ("target_timeout_s", 0.0), ("reach_area", (0.5, 0.0, 0.2, 1.0)), ("reach_area", (0, 0, 1)),
    ("graspable_classes", ()), ("graspable_classes", ("scallop", "Scallop")), ("iou_match", 0.0),
    ("weight_reach", -1.0), ("size_saturation", 0.0),
])
def test_bad_config_is_refused_with_the_field_named(field, value):
    with pytest.raises(ValueError, match=field):
        GraspConfig(**{field: value})


def test_config_from_dict_rejects_unknown_keys():
    assert GraspConfig.from_dict({"min_score": 0.3}).min_score == 0.3
    with pytest.raises(ValueError, match="min_scor"):
        GraspConfig.from_dict({"min_scor": 0.3})
    with pytest.raises(ValueError, match="at least one of"):
        GraspConfig(weight_priority=0, weight_score=0, weight_size=0, weight_reach=0)


# --------------------------------------------------------------------------------------------- bearing
K = np.array([[500.0, 0.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])


def test_bearing_of_the_principal_point_is_the_optical_axis():
    np.testing.assert_allclose(bearing_ray(320, 240, K), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(bearing_ray(320, 240, K.reshape(-1), d=np.zeros(5)), [0, 0, 1], atol=1e-12)


def test_bearing_is_the_normalised_pinhole_ray_and_reprojects():
    u, v = 500.0, 100.0
    ray = bearing_ray(u, v, K)
    assert np.linalg.norm(ray) == pytest.approx(1.0)
    assert ray[0] > 0 and ray[1] < 0 and ray[2] > 0  # right of and above the centre
    np.testing.assert_allclose(ray / ray[2], [(u - 320) / 500, (v - 240) / 510, 1.0], atol=1e-12)
    proj = K @ (ray / ray[2])
    np.testing.assert_allclose(proj[:2], [u, v], atol=1e-9)


def test_bearing_with_distortion_inverts_opencvs_projection():
    d = np.array([-0.25, 0.08, 0.001, -0.002, 0.0])
    point = np.array([[0.3, -0.2, 1.0]])
    pixel, _ = cv2.projectPoints(point, np.zeros(3), np.zeros(3), K, d)
    u, v = pixel[0, 0]
    ray = bearing_ray(u, v, K, d)
    np.testing.assert_allclose(ray, point[0] / np.linalg.norm(point[0]), atol=1e-6)
    assert not np.allclose(ray, bearing_ray(u, v, K), atol=1e-3)  # the pinhole answer would be off


def test_bearing_rejects_a_bad_camera_matrix():
    with pytest.raises(ValueError, match="fx"):
        bearing_ray(1, 1, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="coefficients"):
        bearing_ray(1, 1, K, d=[0.1, 0.2, 0.3])
