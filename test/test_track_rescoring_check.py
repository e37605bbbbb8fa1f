"""scripts/check_track_rescoring.py: the causal rescoring its README figure comes from."""

import numpy as np
import pytest

from script_loading import load_script
from underwater_detection.engine.voc_eval import GroundTruth, Prediction, evaluate_voc


@pytest.fixture(scope="module")
def check():
    return load_script("check_track_rescoring")


OBJECT = np.array([10, 10, 50, 50], np.float32)


def _video(frames=8):
    """One object seen in every frame, its score dipping on odd frames, and a one-frame false positive (0.5) on
    each odd frame somewhere else: per frame, the dipped true box ranks below the false one."""
    preds, gts = [], []
    for i in range(frames):
        boxes, scores, labels = [OBJECT], [0.9 if i % 2 == 0 else 0.3], [0]
        if i % 2:
            boxes.append(np.array([100 + 20 * i, 100, 140 + 20 * i, 140], np.float32))
            scores.append(0.5)
            labels.append(0)
        preds.append(Prediction(np.array(boxes), np.array(scores, np.float32), np.array(labels)))
        gts.append(GroundTruth(OBJECT[None], np.array([0]), np.array([False])))
    return preds, gts


def test_a_track_lifts_a_dipped_detection_above_a_flickering_false_one(check):
    preds, gts = _video()
    before = evaluate_voc(preds, gts, 1).mean_ap
    rescored = check.rescore(preds, ["v"] * len(preds), mode="max_mean", window=4)
    after = evaluate_voc(rescored, gts, 1).mean_ap
    assert after > before + 0.05
    # frame 1: the object's 0.3 joins the track (0.9, 0.3): mean 0.6, above the false positive's untouched 0.5
    scores = dict(zip(map(tuple, rescored[1].boxes.tolist()), rescored[1].scores.tolist()))
    assert scores[tuple(OBJECT.tolist())] == pytest.approx(0.6)
    assert sorted(scores.values())[0] == pytest.approx(0.5)


def test_tracks_do_not_cross_videos_or_classes(check):
    preds, _ = _video(2)
    # frame 1 starts a new video: its dipped detection is not lifted by frame 0's track
    rescored = check.rescore(preds, ["a", "b"], mode="max_mean", window=4)
    assert rescored[1].scores.max() == pytest.approx(0.5)
    other_class = [preds[0], Prediction(preds[1].boxes, preds[1].scores, np.array([1, 1]))]
    rescored = check.rescore(other_class, ["a", "a"], mode="max_mean", window=4)
    assert sorted(rescored[1].scores.tolist()) == pytest.approx([0.3, 0.5])


def test_coasting_re_emits_a_missed_track_at_a_decayed_score_and_bad_settings_are_refused(check):
    preds, _ = _video(4)
    gap = [preds[0], preds[0], preds[0], Prediction(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))]
    rescored = check.rescore(gap, ["v"] * 4, mode="max_mean", window=4, coast=1, decay=0.5)
    assert len(rescored[3].scores) == 1 and rescored[3].scores[0] == pytest.approx(0.45)
    assert np.allclose(rescored[3].boxes[0], OBJECT)
    assert len(check.rescore(gap, ["v"] * 4, coast=0)[3].scores) == 0
    with pytest.raises(ValueError, match="window"):
        check.rescore(gap, ["v"] * 4, window=0)
    with pytest.raises(ValueError, match="unknown mode"):
        check.rescore(gap[:1], ["v"], mode="median")  # refused even when no detection joins a track
    with pytest.raises(ValueError, match="one key per frame"):
        check.rescore(gap, ["v"] * 3)
