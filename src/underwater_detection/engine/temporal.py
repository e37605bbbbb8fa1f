"""``TemporalDetector``: the one inference API for the ROS node, bag evaluation and benchmarks.

Temporal refinement propagation (TDRNet paper, section IV-C, Fig. 5c): the reference generator (RG) runs
on *key frames* only; every frame runs the refinement detector (RD) with the references (``ar``, ``Δp``) of
the stream's latest key frame, decoding against ``decode(e * ar, anchors)``.

Key-frame rule, per stream (a stream is a camera ``frame_id``; each has its own references, tracker and
clock, so a stereo pair or several cameras can share one detector):

* the first frame of a stream, and the first frame after :meth:`reset`;
* every ``k``-th frame (frames ``0, k, 2k, ...`` of a period);
* a *reset* (references dropped, tracker cleared) when the image size changes, when the stamp goes backwards
  (a bag that loops), or when the gap to the previous frame exceeds ``max_gap_s`` (dropped frames, a paused
  bag: the scene may have changed completely).

``k`` and ``e`` can be changed between frames; a new value takes effect at the stream's next key frame, so a
period never mixes references computed under one setting with decoding under another, and nothing resets.

Per-frame models (SSD4s, RefineDet, DRNet) go through the same API: every frame is a key frame, so every
comparison (accuracy, latency) runs through one code path.
"""
from __future__ import annotations

import itertools
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..data.transforms import boxes_to_pixels, image_to_tensor
from ..models.checkpoint import load_model
from ..models.inference import prepare_for_inference
from ..models.registry import preprocess_config, priors_for
from ..models.spec import ModelSpec, validate_key_interval, validate_soft_coefficient
from ..models.temporal import References, TemporalRefinementNet
from ..ops.postprocess import PostprocessConfig, postprocess
from .tracking import IoUTracker


@dataclass
class Detections:
    """One frame's detections in **original-image pixels**.

    ``boxes`` (N, 4) float32 ``(x1, y1, x2, y2)``; ``scores`` (N,) in [0, 1]; ``labels`` (N,) int64 indices
    into ``class_names``; ``track_ids`` (N,) int64, ``-1`` when tracking is off or the score is below the
    tracker's ``min_score``. ``reset_reason`` says why this key frame was forced (``None`` otherwise).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    class_names: tuple[str, ...]
    is_key_frame: bool
    stamp: float
    stream_id: str
    image_size: tuple[int, int]  # (height, width)
    reset_reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def names(self) -> list[str]:
        return [self.class_names[i] for i in self.labels]


@dataclass
class _StreamState:
    key_interval: int
    soft_coefficient: float
    refs: References | None = None
    frames_since_key: int = 0
    last_stamp: float | None = None
    image_size: tuple[int, int] | None = None
    tracker: IoUTracker | None = None


class TemporalDetector:
    """Run a detector on image streams with key-frame scheduling, soft refinement and optional tracking.

    Args:
        model: a built model (``TemporalRefinementNet`` or a per-frame detector), any device.
        spec: its :class:`ModelSpec` (input size, anchors, variances, post-processing, temporal defaults).
        class_names: label ``i`` is ``class_names[i]``.
        preprocess: mean/std/colour order the weights expect (from the checkpoint).
        key_interval, soft_coefficient, max_gap_s: ``k``, ``e`` and the gap reset (default: the spec's).
        postprocess: score threshold, NMS IoU, top-k (default: the spec's).
        tracking: assign track ids with an :class:`IoUTracker` per stream (``tracker_options`` go to it).
        max_streams: streams kept at once; the least recently seen is forgotten beyond that.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        class_names: Sequence[str],
        preprocess: dict[str, Any] | None = None,
        key_interval: int | None = None,
        soft_coefficient: float | None = None,
        max_gap_s: float | None = None,
        postprocess_config: PostprocessConfig | None = None,
        tracking: bool = True,
        tracker_options: dict[str, Any] | None = None,
        max_streams: int = 16,
        trained_input_size: Sequence[int] | None = None,
    ) -> None:
        self.model = model.eval()
        self.spec = spec
        self.class_names = tuple(class_names)
        if getattr(model, "num_classes", len(self.class_names)) != len(self.class_names):
            raise ValueError(f"model predicts {model.num_classes} classes but {len(self.class_names)} names were given")
        self.preprocess = dict(preprocess) if preprocess is not None else preprocess_config(spec, model)
        self.device = next(model.parameters()).device
        self.is_temporal = isinstance(model, TemporalRefinementNet)
        defaults = spec.temporal or {"key_interval": 1, "soft_coefficient": 1.0, "max_gap_s": 1.0}
        self._key_interval = validate_key_interval(defaults["key_interval"] if key_interval is None else key_interval)
        self._soft_coefficient = validate_soft_coefficient(
            defaults["soft_coefficient"] if soft_coefficient is None else soft_coefficient
        )
        self.max_gap_s = float(defaults["max_gap_s"] if max_gap_s is None else max_gap_s)
        if not (math.isfinite(self.max_gap_s) and self.max_gap_s > 0):
            raise ValueError(f"max_gap_s must be a finite number > 0, got {self.max_gap_s}")
        self.postprocess_config = postprocess_config or spec.postprocess
        self.tracking = tracking
        self.tracker_options = dict(tracker_options or {})
        IoUTracker(**self.tracker_options)  # validate now, not at the first frame
        self._track_ids = itertools.count(1)  # shared by every stream's tracker: ids are never reused
        if max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {max_streams}")
        self.max_streams = max_streams
        self._streams: OrderedDict[str, _StreamState] = OrderedDict()
        self._priors = priors_for(spec, self.device)
        # the size the weights were trained at, when ``spec`` runs them at another (reported, and warned about)
        h, w = spec.input_size if trained_input_size is None else trained_input_size
        self.trained_input_size: tuple[int, int] = (int(h), int(w))
        self.stats = {"frames": 0, "key_frames": 0, "resets": 0}

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        input_size: tuple[int, int] | None = None,
        **options: Any,
    ) -> "TemporalDetector":
        """``input_size`` (height, width) runs the network at another size than it was trained at.

        The weights are fully convolutional and the anchors are computed from the size, so this trades accuracy
        for speed without retraining (``uwdet eval --input-size`` measures how much). The network's BatchNorms
        are folded into its convolutions and, on the CPU, its weights are stored channels-last (inference only;
        same outputs to float rounding; ``models.inference``).
        """
        resolved = resolve_device(device)
        model, ckpt = load_model(path, resolved)
        prepare_for_inference(model, resolved)
        spec = ckpt.spec if input_size is None else ckpt.spec.with_input_size(*input_size)
        return cls(model, spec, ckpt.class_names, ckpt.preprocess, trained_input_size=ckpt.spec.input_size, **options)

    # ----------------------------------------------------------------- settings
    @property
    def key_interval(self) -> int:
        return self._key_interval

    @key_interval.setter
    def key_interval(self, k: int) -> None:
        self._key_interval = validate_key_interval(k)

    @property
    def soft_coefficient(self) -> float:
        return self._soft_coefficient

    @soft_coefficient.setter
    def soft_coefficient(self, e: float) -> None:
        self._soft_coefficient = validate_soft_coefficient(e)

    def reset(self, stream_id: str | None = None) -> None:
        """Forget one stream's references and tracks (all streams if ``None``): its next frame is a key frame."""
        if stream_id is None:
            self._streams.clear()
        else:
            self._streams.pop(stream_id, None)

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    # ----------------------------------------------------------------- inference
    def detect(self, image: np.ndarray, stamp: float, stream_id: str = "", color: str = "bgr") -> Detections:
        """Detect one frame. ``image`` HxWx3 (``color`` order) or HxW uint8; ``stamp`` in seconds."""
        return self.detect_batch([image], [stamp], [stream_id], color)[0]

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        stamps: Sequence[float],
        stream_ids: Sequence[str],
        color: str = "bgr",
    ) -> list[Detections]:
        """One frame from each of several streams (e.g. a stereo pair) in one forward pass.

        RG runs once on the sub-batch of images that are key frames for their streams; RD runs on all.
        """
        if not (len(images) == len(stamps) == len(stream_ids)) or not images:
            raise ValueError(f"need as many stamps and stream ids as images, got {len(images)}/{len(stamps)}/{len(stream_ids)}")
        if len(set(stream_ids)) != len(stream_ids):
            raise ValueError(f"a batch must hold at most one frame per stream, got streams {list(stream_ids)}")
        t0 = time.perf_counter()
        batch = torch.stack(
            [image_to_tensor(im, self.spec.input_size, self.preprocess, color) for im in images]
        ).to(self.device)
        t1 = time.perf_counter()

        states, key_flags, reasons = [], [], []
        for stamp in stamps:
            if not math.isfinite(float(stamp)):
                raise ValueError(f"frame stamp must be a finite number of seconds, got {stamp!r}")
        for image, stamp, stream_id in zip(images, stamps, stream_ids):
            state, reason = self._advance(stream_id, float(stamp), (int(image.shape[0]), int(image.shape[1])))
            if state.refs is None and state.frames_since_key != 0:
                # the key frame's forward failed (e.g. out of memory): start a new period now instead of
                # running RD without references for the rest of it
                state.frames_since_key = 0
                state.key_interval, state.soft_coefficient = self._key_interval, self._soft_coefficient
            states.append(state)
            reasons.append(reason)
            key_flags.append(not self.is_temporal or state.frames_since_key == 0)

        with torch.inference_mode():
            t_ref = 0.0
            if self.is_temporal:
                key_idx = [i for i, is_key in enumerate(key_flags) if is_key]
                if key_idx:
                    tr = time.perf_counter()
                    refs = self.model.reference(batch[key_idx], self._soft_coefficient)
                    self._sync()
                    t_ref = time.perf_counter() - tr
                    for j, i in enumerate(key_idx):
                        states[i].refs = refs.select(j)
                td = time.perf_counter()
                outputs = self.model.detect(batch, References.stack([s.refs for s in states]))  # type: ignore[misc]
            else:
                td = time.perf_counter()
                outputs = self.model(batch)
            self._sync()
            t2 = time.perf_counter()
            results = []
            for i, state in enumerate(states):
                single = type(outputs)(*(None if t is None else t[i : i + 1] for t in outputs))
                # e exists only for propagated references; a per-frame model refines fully (e = 1)
                e = state.soft_coefficient if self.is_temporal else 1.0
                dets = postprocess(
                    single, self._priors, self.postprocess_config, self.spec.variances,
                    getattr(self.model, "naf_threshold", None), e,
                )[0]
                results.append(dets)
        t3 = time.perf_counter()

        out = []
        for i, (dets, state) in enumerate(zip(results, states)):
            h, w = state.image_size  # type: ignore[misc]
            boxes = boxes_to_pixels(dets.boxes, h, w)
            scores = dets.scores.cpu().numpy().astype(np.float32)
            labels = dets.labels.cpu().numpy().astype(np.int64)
            ids = state.tracker.update(boxes, scores, labels) if state.tracker is not None else np.full(len(scores), -1, np.int64)
            out.append(
                Detections(
                    boxes=boxes, scores=scores, labels=labels, track_ids=ids, class_names=self.class_names,
                    is_key_frame=key_flags[i], stamp=float(stamps[i]), stream_id=stream_ids[i],
                    image_size=(h, w), reset_reason=reasons[i],
                    timings_ms={
                        "preprocess": (t1 - t0) * 1e3 / len(images),
                        "reference": t_ref * 1e3,
                        "detect": (t2 - td) * 1e3,
                        "postprocess": (t3 - t2) * 1e3 / len(images),
                        "total": (time.perf_counter() - t0) * 1e3,
                    },
                )
            )
            self.stats["frames"] += 1
            self.stats["key_frames"] += int(key_flags[i])
        return out

    # ----------------------------------------------------------------- scheduling
    def _advance(self, stream_id: str, stamp: float, size: tuple[int, int]) -> tuple[_StreamState, str | None]:
        """Update the stream's clock and decide key frame / reset; returns the state and a reset reason."""
        state = self._streams.get(stream_id)
        reason = None
        if state is not None:
            if size != state.image_size:
                reason = f"image size changed from {state.image_size} to {size}"
            elif state.last_stamp is not None and stamp < state.last_stamp:
                reason = f"time went backwards ({state.last_stamp:.3f} -> {stamp:.3f})"
            elif state.last_stamp is not None and stamp - state.last_stamp > self.max_gap_s:
                reason = f"gap of {stamp - state.last_stamp:.3f} s > max_gap_s {self.max_gap_s}"
            if reason is not None:
                self.stats["resets"] += 1
                state = None
        if state is None:
            state = _StreamState(self._key_interval, self._soft_coefficient, image_size=size)
            if self.tracking:
                state.tracker = IoUTracker(**self.tracker_options, id_counter=self._track_ids)
            self._streams[stream_id] = state
            if reason is None:
                reason = "first frame of stream"
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        else:
            state.frames_since_key += 1
            if state.frames_since_key >= state.key_interval:
                state.frames_since_key = 0
        if state.frames_since_key == 0:  # key frame: settings changed since the last one take effect now
            state.key_interval = self._key_interval
            state.soft_coefficient = self._soft_coefficient
        self._streams.move_to_end(stream_id)
        state.last_stamp = stamp
        return state, reason

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error for an unavailable CUDA request."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available on this machine (use 'cpu' or 'auto')")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from exc
