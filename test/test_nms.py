"""Tests for the NMS backends.

``nms_torch`` is the oracle; it is itself checked against a literal list-based greedy
NMS, and the OpenCV wrapper must reproduce it exactly (same indices, same order) on
random sets dense enough that most boxes interact.
"""

from __future__ import annotations

import pytest
import torch

from underwater_detection.ops import nms as nms_mod
from underwater_detection.ops.nms import batched_nms, nms, nms_cv2, nms_torch

needs_cv2 = pytest.mark.skipif(
    nms_mod._cv2_module() is None, reason="OpenCV (cv2.dnn.NMSBoxes) is not importable"
)

THRESHOLDS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.95]
SIZES = [0, 1, 2, 5, 17, 64, 150, 300, 500]


def _random_boxes(n: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes jittered around a few cluster centres, so IoUs span the whole [0, 1] range."""
    g = torch.Generator().manual_seed(seed)
    n_clusters = max(1, n // 8)
    centres = torch.rand(n_clusters, 2, generator=g, dtype=torch.float64) * 200 - 50
    pick = torch.randint(0, n_clusters, (n,), generator=g)
    ctr = centres[pick] + 6 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    wh = 5 + 40 * torch.rand(n, 2, generator=g, dtype=torch.float64)
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1).to(dtype)
    scores = torch.rand(n, generator=g, dtype=torch.float64)  # float64: no ties
    assert scores.unique().numel() == n
    return boxes, scores


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _list_greedy(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """Textbook greedy NMS on Python lists, to validate the oracle itself."""
    bl, sl = boxes.tolist(), scores.tolist()
    order = sorted(range(len(sl)), key=lambda i: -sl[i])
    keep: list[int] = []
    for i in order:
        if all(_iou(bl[i], bl[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def _per_label_oracle(boxes, scores, labels, thr) -> torch.Tensor:
    parts = []
    for lab in labels.unique():
        idx = (labels == lab).nonzero().squeeze(1)
        parts.append(idx[nms_torch(boxes[idx], scores[idx], thr)])
    keep = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    return keep[torch.argsort(scores[keep], descending=True)]


@pytest.mark.parametrize("n", [0, 1, 7, 40, 120])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.8])
def test_oracle_matches_textbook_greedy(n: int, thr: float) -> None:
    boxes, scores = _random_boxes(n, seed=100 + n)
    assert nms_torch(boxes, scores, thr).tolist() == _list_greedy(boxes, scores, thr)


def test_oracle_sparse_path_matches_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes, scores = _random_boxes(300, seed=7)
    dense = nms_torch(boxes, scores, 0.5)
    monkeypatch.setattr(nms_mod, "_DENSE_MAX_BOXES", 10)
    assert torch.equal(nms_torch(boxes, scores, 0.5), dense)


@needs_cv2
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("thr", THRESHOLDS)
def test_cv2_equals_oracle_random(n: int, thr: float) -> None:
    for seed in range(3):
        for dtype in (torch.float64, torch.float32):
            boxes, scores = _random_boxes(n, seed=1000 * n + seed, dtype=dtype)
            want = nms_torch(boxes, scores, thr)
            got = nms_cv2(boxes, scores, thr)
            assert got.dtype == torch.long
            assert got.tolist() == want.tolist(), (n, thr, seed, dtype)


def test_random_sets_really_suppress() -> None:
    """Guard the random-set test against being vacuous (nothing or everything kept)."""
    boxes, scores = _random_boxes(300, seed=300_000)
    kept = nms_torch(boxes, scores, 0.5).numel()
    assert 20 < kept < 250


@pytest.mark.parametrize("backend", ["auto", "torch", pytest.param("cv2", marks=needs_cv2)])
def test_nms_dispatch_and_order(backend: str) -> None:
    boxes, scores = _random_boxes(200, seed=11)
    keep = nms(boxes, scores, 0.5, backend=backend)
    assert keep.tolist() == nms_torch(boxes, scores, 0.5).tolist()
    kept_scores = scores[keep]
    assert torch.all(kept_scores[:-1] > kept_scores[1:])


def test_auto_picks_cv2_on_cpu_when_available() -> None:
    expected = "cv2" if nms_mod._cv2_module() is not None else "torch"
    assert nms_mod._resolve_backend("auto", torch.device("cpu")) == expected
    assert nms_mod._resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="backend"):
        nms(torch.zeros(1, 4), torch.zeros(1), 0.5, backend="tv")  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", [nms_torch, pytest.param(nms_cv2, marks=needs_cv2), nms])
def test_empty_input(fn) -> None:
    keep = fn(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.dtype == torch.long and keep.shape == (0,)
    keep = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert keep.dtype == torch.long and keep.shape == (0,)


BACKENDS = [nms_torch, pytest.param(nms_cv2, marks=needs_cv2)]


@pytest.mark.parametrize("fn", BACKENDS)
def test_two_boxes_around_threshold(fn) -> None:
    # IoU = 50 / 150 = 1/3 without "+1" areas; with them it would be 66 / 176 = 0.375.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    scores = torch.tensor([0.6, 0.9])
    assert fn(boxes, scores, 0.3).tolist() == [1]
    assert fn(boxes, scores, 0.34).tolist() == [1, 0]
    # Integer-typed coordinates behave the same (no +1 pixel areas in OpenCV either).
    assert fn(boxes.long().double(), scores, 0.34).tolist() == [1, 0]


@pytest.mark.parametrize("fn", BACKENDS)
def test_identical_boxes_keep_best(fn) -> None:
    boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0]] * 4)
    scores = torch.tensor([0.2, 0.7, 0.5, 0.1])
    assert fn(boxes, scores, 0.5).tolist() == [1]
    assert fn(boxes, scores, 0.99).tolist() == [1]


@pytest.mark.parametrize("fn", BACKENDS)
def test_ties_resolve_to_lower_index(fn) -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10], [50.0, 50, 60, 60]])
    scores = torch.tensor([0.5, 0.5, 0.5])
    assert fn(boxes, scores, 0.5).tolist() == [0, 2]


@pytest.mark.parametrize("fn", BACKENDS)
def test_zero_and_negative_scores_survive(fn) -> None:
    # OpenCV drops scores <= score_threshold and asserts the threshold is >= 0;
    # the wrapper must not inherit that.
    boxes = torch.tensor([[0.0, 0, 10, 10], [20.0, 0, 30, 10], [40.0, 0, 50, 10]])
    scores = torch.tensor([0.0, -3.0, -0.5])
    assert fn(boxes, scores, 0.5).tolist() == [0, 2, 1]


@pytest.mark.parametrize("fn", BACKENDS)
def test_degenerate_boxes_do_not_crash_and_never_suppress(fn) -> None:
    boxes = torch.tensor(
        [
            [5.0, 5.0, 5.0, 5.0],     # point
            [5.0, 5.0, 5.0, 5.0],     # same point: OpenCV alone would call this IoU 1
            [100.0, 0.0, 100.0, 9.0],  # zero width, far away
            [0.0, 0.0, 10.0, 10.0],   # proper box containing the points
            [8.0, 8.0, 2.0, 2.0],     # inverted
            [1.0, 1.0, 9.0, 9.0],     # proper, IoU 0.64 with box 3
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    assert fn(boxes, scores, 0.5).tolist() == [0, 1, 2, 3, 4]
    assert fn(boxes, scores, 0.7).tolist() == [0, 1, 2, 3, 4, 5]


@needs_cv2
def test_cv2_tiny_boxes_fall_back_correctly() -> None:
    # Areas ~1e-18 hit OpenCV's DBL_EPSILON shortcut (IoU := 1) without the fallback.
    s = 1e-9
    boxes = torch.tensor([[0.0, 0.0, s, s], [100 * s, 0.0, 101 * s, s]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8])
    assert nms_cv2(boxes, scores, 0.3).tolist() == [0, 1] == nms_torch(boxes, scores, 0.3).tolist()


@needs_cv2
def test_cv2_negative_threshold_falls_back() -> None:
    boxes, scores = _random_boxes(30, seed=5)
    assert nms_cv2(boxes, scores, -0.1).tolist() == nms_torch(boxes, scores, -0.1).tolist()


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="boxes"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms_torch(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="labels"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5)


@pytest.mark.parametrize("backend", ["torch", pytest.param("cv2", marks=needs_cv2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_equals_per_label_oracle(backend: str, dtype: torch.dtype) -> None:
    for seed in range(6):
        n = [10, 60, 200, 400, 500, 3][seed]
        boxes, scores = _random_boxes(n, seed=50 + seed, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        # Sparse, negative and large label values; coordinates are partly negative too.
        labels = torch.tensor([-7, 0, 3, 1000])[torch.randint(0, 4, (n,), generator=g)]
        for thr in (0.2, 0.5, 0.8):
            got = batched_nms(boxes, scores, labels, thr, backend=backend)
            want = _per_label_oracle(boxes, scores, labels, thr)
            assert got.tolist() == want.tolist(), (seed, thr)


@pytest.mark.parametrize("backend", ["torch", pytest.param("cv2", marks=needs_cv2)])
def test_batched_never_suppresses_across_labels(backend: str) -> None:
    # Identical boxes (including negative coordinates, where the naive
    # labels * (max + 1) offset would let classes collide) under distinct labels.
    boxes = torch.tensor([[-100.0, -100.0, -80.0, -90.0]] * 3 + [[-95.0, -100.0, -75.0, -90.0]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    # Boxes 0 and 3 (same label) have IoU 150 / 250 = 0.6.
    assert batched_nms(boxes, scores, labels, 0.7, backend=backend).tolist() == [0, 1, 2, 3, 4, 5]
    assert batched_nms(boxes, scores, labels, 0.5, backend=backend).tolist() == [0, 1, 2]
    same = torch.zeros(6, dtype=torch.long)
    assert batched_nms(boxes, scores, same, 0.5, backend=backend).tolist() == [0]
    assert batched_nms(boxes, scores, same, 0.7, backend=backend).tolist() == [0, 3]
