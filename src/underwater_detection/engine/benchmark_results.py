"""``uwdet results``: the README's results table and the paper's claims, from the shipped checkpoints.

One command evaluates every shipped model on the synthetic test split through the ``TemporalDetector`` (frame
order, one stream per sequence), the temporal ones at each k x e of the table, and then checks the paper's
claims against the numbers it just measured. Claims are reported as they come out (``holds: false`` is a
result, not an error); nothing here is tuned to make them hold.

Speed is forward FPS as the paper counts it (RG on key frames + RD every frame, averaged over all frames), timed
inside the same run as the accuracy, so the rows are comparable with each other but move with the machine's
load: quote ratios from one run (``uwdet bench-models`` is the controlled speed benchmark).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..models.shipped import PAPER_TDRNET, SHIPPED_MODELS
from .evaluation import EvalResult, evaluate, plot_sweep, write_json
from .temporal import TemporalDetector
from .track_motion import GapMotion, format_motion

DEFAULT_MODELS: tuple[str, ...] = SHIPPED_MODELS
DEFAULT_KEY_INTERVALS: tuple[int, ...] = (1, 4, 8)
DEFAULT_SOFT_COEFFICIENTS: tuple[float, ...] = (1.0, 0.5)
GOAL_MAP50 = 0.85  # the goal for the shipped TDRNet at k = 4
GOAL_FPS = 30.0


@dataclass
class Row:
    model: str
    architecture: str
    result: EvalResult

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "architecture": self.architecture, **self.result.to_dict()}


@dataclass
class Claim:
    name: str
    holds: bool | None  # None: a model it needs was not evaluated
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.name, "holds": self.holds, "detail": self.detail}


@dataclass
class BenchmarkResults:
    data: str
    rows: list[Row] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    wall_s: float = 0.0
    motion: list[GapMotion] | None = None  # how far targets move within a period (None: data without tracks)
    data_fps: float | None = None          # the camera's frame rate, from the data's video records

    @property
    def condition_videos(self) -> dict[str, int]:
        """Videos evaluated per water condition (every row sees the same frames; ``--max-frames`` may cut some)."""
        out: dict[str, int] = {}
        for row in self.rows:
            for condition, count in row.result.condition_videos.items():
                out[condition] = max(count, out.get(condition, 0))
        return out

    def find(self, architecture: str, k: int | None = None, e: float | None = None,
             model: str | None = None) -> EvalResult | None:
        """The first row of ``architecture`` (of ``model``, if given) at ``k`` and ``e``."""
        for row in self.rows:
            r = row.result
            if row.architecture != architecture or (model is not None and row.model != model):
                continue
            if k is not None and r.key_interval != k:
                continue
            if e is not None and (r.soft_coefficient is None or not math.isclose(r.soft_coefficient, e)):
                continue
            return r
        return None


class SequenceSubset:
    """The first ``count`` sequences of a dataset, for a quick run that still has whole sequences (``max_frames``
    would cut the last one short and skip the rest)."""

    def __init__(self, dataset: Any, count: int) -> None:
        self.dataset = dataset
        self._sequences = dict(list(dataset.sequences().items())[:count])

    def sequences(self) -> dict[Any, list[int]]:
        return self._sequences

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def annotations(self, index: int) -> Any:
        return self.dataset.annotations(index)

    def frame_rate(self) -> float | None:
        return self.dataset.frame_rate()  # a DetectionDataset or another wrapper: both have it

    def video_conditions(self) -> dict[Any, str]:
        return {k: c for k, c in self.dataset.video_conditions().items() if k in self._sequences}

    def __len__(self) -> int:
        return sum(len(v) for v in self._sequences.values())


class FrameStep(SequenceSubset):
    """Every ``step``-th frame of each sequence: the same video at 1/step of its frame rate, so the effect of the
    frame rate on a k-sweep can be measured on identical content (still images are kept)."""

    def __init__(self, dataset: Any, step: int) -> None:
        if step < 1:
            raise ValueError(f"frame step must be >= 1, got {step}")
        self.dataset = dataset
        self.step = step
        self._sequences = {key: indices[::step] for key, indices in dataset.sequences().items()}

    def frame_rate(self) -> float | None:
        rate = super().frame_rate()
        return rate / self.step if rate is not None else None


def run_benchmark(
    checkpoints: Sequence[str | Path],
    dataset: Any,
    key_intervals: Sequence[int] = DEFAULT_KEY_INTERVALS,
    soft_coefficients: Sequence[float] = DEFAULT_SOFT_COEFFICIENTS,
    device: str = "cpu",
    fps: float = 10.0,
    max_frames: int | None = None,
    data_name: str = "",
    max_detections: int | None = 100,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> BenchmarkResults:
    """Evaluate each checkpoint (temporal ones at every k x e) and check the claims.

    ``max_detections`` caps detections per image (COCO's own evaluation keeps 100; the specs' 200 only doubles
    pycocotools' work on a split with ~12 objects per frame). ``None`` keeps each model's setting."""
    out = BenchmarkResults(data=data_name)
    start = time.perf_counter()
    for path in checkpoints:
        detector = TemporalDetector.from_checkpoint(path, device=device, tracking=False)
        if max_detections is not None:
            detector.postprocess_config = detector.postprocess_config.with_max_detections(max_detections)
        arch = detector.spec.architecture
        name = detector.spec.name
        grid: list[tuple[int | None, float | None]] = (
            [(k, e) for e in soft_coefficients for k in key_intervals] if detector.is_temporal else [(None, None)]
        )
        for k, e in grid:
            detector.reset()
            if k is not None and e is not None:
                detector.key_interval = k
                detector.soft_coefficient = e
            t0 = time.perf_counter()
            result = evaluate(detector, dataset, fps, max_frames)
            out.rows.append(Row(name, arch, result))
            log(f"  {name:16s} k={k or '-'} e={e if e is not None else '-'}: mAP@0.5 {100 * result.voc_map50:.1f}  "
                f"COCO AP {100 * result.coco['AP']:.1f}  {result.forward_fps:.1f} FPS  ({time.perf_counter() - t0:.0f} s)")
    out.claims = check_claims(out)
    out.wall_s = time.perf_counter() - start
    return out


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


def _against(value: float, threshold: float, scale: float = 100.0) -> str:
    """``value`` for a claim's detail, one decimal unless that would round it onto the threshold it is judged by:
    a loss of 1.03 points printed as "1.0" next to DOES NOT HOLD (session 18's grid did) reads as a bug."""
    text, edge = f"{scale * value:.1f}", f"{scale * threshold:.1f}"
    text = f"{scale * value:.2f}" if text == edge else text
    # a loss of -0.004 points (session 19's 384x512 model: 84.5 -> 84.5) reads as "0.0", not "-0.0"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def check_claims(res: BenchmarkResults) -> list[Claim]:
    """The paper's claims (TDRNet paper, sections V-VI) on the numbers just measured. mAP is VOC mAP@0.5."""
    claims: list[Claim] = []
    ssd, refinedet, drnet = res.find("ssd4s"), res.find("refinedet"), res.find("drnet")
    if ssd and refinedet and drnet:
        a, b, c = drnet.voc_map50, refinedet.voc_map50, ssd.voc_map50
        claims.append(Claim("DRNet > RefineDet > SSD4s", a > b > c,
                            f"DRNet {_points(a)}, RefineDet {_points(b)}, SSD4s {_points(c)}"))
    else:
        claims.append(Claim("DRNet > RefineDet > SSD4s", None, "needs ssd4s, refinedet and drnet"))

    tdrnets = list(dict.fromkeys(row.model for row in res.rows if row.architecture == "tdrnet"))
    # The paper's claims read the paper's TDRNet; a run without it (--models, a user's own checkpoint) falls back
    # to its first TDRNet, and every detail names the model it read.
    paper = PAPER_TDRNET if PAPER_TDRNET in tdrnets else (tdrnets[0] if tdrnets else None)
    tdr4 = res.find("tdrnet", 4, 1.0, model=paper)
    if tdr4 and ssd:
        gain = tdr4.voc_map50 - ssd.voc_map50
        claims.append(Claim("TDRNet (k=4) beats per-frame SSD4s by >= 2 points", gain >= 0.02,
                            f"TDRNet ({paper}) k=4 e=1 {_points(tdr4.voc_map50)} vs SSD4s {_points(ssd.voc_map50)}: "
                            f"{'+' if gain >= 0 else ''}{_against(gain, 0.02)} points"))
    else:
        claims.append(Claim("TDRNet (k=4) beats per-frame SSD4s by >= 2 points", None, "needs tdrnet k=4 e=1 and ssd4s"))

    def loss(arch: str, e: float, model: str | None = None) -> float | None:
        r1, r8 = res.find(arch, 1, e, model), res.find(arch, 8, e, model)
        return None if r1 is None or r8 is None else r1.voc_map50 - r8.voc_map50

    tdr_loss = loss("tdrnet", 1.0, paper)
    tr_loss, tr_loss_soft = loss("trnet", 1.0), loss("trnet", 0.5)
    if tdr_loss is not None:
        claims.append(Claim("TDRNet loses <= 1 point from k=1 to k=8", tdr_loss <= 0.01,
                            f"TDRNet ({paper}) e=1: k=1 -> k=8 loses {_against(tdr_loss, 0.01)} points"))
    if tdr_loss is not None and tr_loss is not None:
        claims.append(Claim("TRNet (e=1) loses more than TDRNet from k=1 to k=8", tr_loss > tdr_loss,
                            f"TRNet e=1 loses {100 * tr_loss:.1f} points, TDRNet ({paper}) e=1 {100 * tdr_loss:.1f}"))
    if tr_loss is not None and tr_loss_soft is not None:
        claims.append(Claim("e=0.5 narrows TRNet's loss from k=1 to k=8", tr_loss_soft < tr_loss,
                            f"TRNet loses {100 * tr_loss:.1f} points at e=1, {100 * tr_loss_soft:.1f} at e=0.5"))
    for name in tdrnets:
        own_loss = loss("tdrnet", 1.0, name) if name != paper else None  # the paper model's is claimed above
        if own_loss is not None:
            claims.append(Claim(f"TDRNet ({name}) loses <= 1 point from k=1 to k=8", own_loss <= 0.01,
                                f"{name} e=1: k=1 -> k=8 loses {_against(own_loss, 0.01)} points"))
        mine = res.find("tdrnet", 4, 1.0, model=name)
        if mine is not None:
            claims.append(Claim(
                f"Goal: shipped TDRNet ({name}) mAP@0.5 >= {GOAL_MAP50:.2f} at k=4 and >= {GOAL_FPS:.0f} forward FPS",
                mine.voc_map50 >= GOAL_MAP50 and mine.forward_fps >= GOAL_FPS,
                f"{_against(mine.voc_map50, GOAL_MAP50)} mAP@0.5 at "
                f"{_against(mine.forward_fps, GOAL_FPS, 1.0)} forward FPS (k=4, e=1)"))
    return claims


def format_table(res: BenchmarkResults) -> str:
    lines = [
        "| model | k | e | mAP@0.5 | COCO AP | AP50 | AP75 | APs | APm | APl | forward FPS | key frames |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in res.rows:
        r, c = row.result, row.result.coco
        lines.append(
            f"| {row.model} | {r.key_interval or '-'} | {r.soft_coefficient if r.soft_coefficient is not None else '-'} | "
            f"{_points(r.voc_map50)} | {_points(c['AP'])} | {_points(c['AP50'])} | {_points(c['AP75'])} | "
            f"{_points(c['APs'])} | {_points(c['APm'])} | {_points(c['APl'])} | {r.forward_fps:.1f} | "
            f"{r.key_frames}/{r.frames} |"
        )
    return "\n".join(lines)


def _videos(count: int) -> str:
    return f"{count} video" if count == 1 else f"{count} videos"


def format_conditions(res: BenchmarkResults) -> str:
    """mAP@0.5 of every row per water condition (empty when the data names no conditions)."""
    videos = res.condition_videos
    names = sorted(videos)
    if not names:
        return ""
    lines = ["| model | k | e | " + " | ".join(f"{n} ({_videos(videos[n])})" for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for row in res.rows:
        r = row.result
        cells = [_points(r.map50_by_condition[n]) if n in r.map50_by_condition else "-" for n in names]
        lines.append(f"| {row.model} | {r.key_interval or '-'} | "
                     f"{r.soft_coefficient if r.soft_coefficient is not None else '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_claims(res: BenchmarkResults) -> str:
    mark = {True: "holds", False: "DOES NOT HOLD", None: "not measured"}
    return "\n".join(f"- {c.name}: **{mark[c.holds]}** ({c.detail})" for c in res.claims)


def write_outputs(res: BenchmarkResults, out_dir: str | Path, meta: dict[str, Any]) -> list[Path]:
    out_dir = Path(out_dir)
    written = [write_json(out_dir / "results.json", {
        **meta, "data": res.data, "wall_s": res.wall_s,
        "rows": [row.to_dict() for row in res.rows], "claims": [c.to_dict() for c in res.claims],
        "data_fps": res.data_fps, "motion": [m.to_dict() for m in res.motion] if res.motion else None,
        "condition_videos": res.condition_videos,
    })]
    md = out_dir / "results.md"
    text = format_table(res) + "\n\n" + format_claims(res) + "\n"
    if res.condition_videos:
        text += "\nmAP@0.5 per water condition (the same runs, frames grouped by their video's condition):\n\n"
        text += format_conditions(res) + "\n"
    if res.motion:
        text += ("\nTarget motion in this split (IoU of a target's box with its own box g frames later; "
                 "a period of k frames propagates the key frame's references over k - 1 frames):\n"
                 + format_motion(res.motion, res.data_fps) + "\n")
    md.write_text(text)
    written.append(md)
    for name in dict.fromkeys(row.model for row in res.rows if row.result.key_interval is not None):
        rows = [row.result for row in res.rows if row.model == name]
        written.append(plot_sweep(rows, out_dir / f"sweep_{name}.png", f"{name}: mAP@0.5 vs forward FPS (k, e)"))
    return written
