"""``uwdet bench-models``: parameters, FLOPs and CPU forward latency of every detector and backbone.

Latency is the median of ``repeats`` timed forwards after ``warmup`` untimed ones, batch 1, no_grad, eval
mode with the BatchNorms folded and the weights channels-last as the CPU inference paths run them
(``models.inference``), with
``torch.set_num_threads(threads)``: the figure that decides whether a model is real-time on the
vehicle's CPU fallback or the 2-core CI machine. Medians, because shared machines are noisy; never use these
numbers as pass/fail thresholds in tests.

Temporal models (TRNet / TDRNet) are timed as they run on video: over a sequence of ``sequence_length``
frames the reference generator runs on key frames (every k-th) and the refinement detector on every frame,
and the row reports the mean forward ms *per frame* (median over ``repeats`` sequences), for each k. Each
temporal row also gives the speed-up over per-frame DRNet with the same backbone, measured in the same run:
``drnet ms / temporal ms`` (> 1 means faster than DRNet).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (1 multiply-add = 2 FLOPs). It counts the
convolutions, including the one that realises each deformable conv, but not ``grid_sample``'s bilinear
sampling, so deformable models are slightly undercounted; the latency column is the honest cost.
"""
from __future__ import annotations

import json
import platform
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.backbones import build_backbone
from ..models.inference import prepare_for_inference
from ..models.registry import build_model
from ..models.spec import ModelSpec, available_model_specs, load_model_spec, parse_size_hw
from .runtime import configure_cpu_runtime

DEFAULT_MODELS = (
    "ssd4s_lite", "refinedet_lite", "drnet_lite",
    "ssd4s_effnet", "refinedet_effnet", "drnet_effnet",
    "ssd4s_vgg16", "refinedet_vgg16", "drnet_vgg16",
)
DEFAULT_BACKBONES = ("lite", "efficientnet_lite0", "vgg16")
DEFAULT_TEMPORAL = ("trnet_lite", "tdrnet_lite", "tdrnet_lite_tcb", "tdrnet_lite_tcb_r384")
DEFAULT_KEY_INTERVALS = (1, 2, 4, 8)


@dataclass
class BenchRow:
    name: str
    kind: str  # "model" | "backbone"
    params_m: float
    gflops: float
    forward_ms_median: float
    forward_ms_p90: float
    input_size: tuple[int, int]
    repeats: int
    key_interval: int | None = None  # temporal rows: RG every k-th frame
    speedup_vs_drnet: float | None = None  # temporal rows: per-frame DRNet ms / this row's ms, same run
    reference_ms: float | None = None  # temporal rows: RG alone (one key frame's extra cost)
    refinement_ms: float | None = None  # temporal rows: RD alone (every frame's cost)

    @property
    def label(self) -> str:
        return self.name if self.key_interval is None else f"{self.name} k={self.key_interval}"


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_gflops(module: nn.Module, example: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(example)
    return counter.get_total_flops() / 1e9


def time_forward(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return times


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_module(
    name: str, kind: str, module: nn.Module, size: tuple[int, int], warmup: int, repeats: int
) -> BenchRow:
    module.eval()
    params = count_params(module)  # the checkpoint's count: folding turns each BatchNorm's 2C into a C-bias
    prepare_for_inference(module, "cpu")  # as the inference paths run it on the CPU
    x = torch.randn(1, 3, *size)
    times = time_forward(lambda: module(x), warmup, repeats)
    return BenchRow(
        name=name,
        kind=kind,
        params_m=params / 1e6,
        gflops=count_gflops(module, x),
        forward_ms_median=statistics.median(times),
        forward_ms_p90=_percentile(times, 0.9),
        input_size=size,
        repeats=repeats,
    )


def bench_temporal(
    name: str,
    model: nn.Module,
    size: tuple[int, int],
    key_intervals: Sequence[int],
    warmup: int,
    repeats: int,
    sequence_length: int,
) -> list[BenchRow]:
    """Per-frame cost over a video: RG on frames 0, k, 2k, ..., RD on every frame (module docstring)."""
    model.eval()
    frames = [torch.randn(1, 3, *size) for _ in range(4)]  # content does not change the cost
    x = frames[0]
    params, gflops = count_params(model) / 1e6, count_gflops(model, x)  # before folding, as bench_module
    prepare_for_inference(model, "cpu")
    with torch.no_grad():
        refs = model.reference(x)
    rg_times = time_forward(lambda: model.reference(x), warmup, repeats)
    rd_times = time_forward(lambda: model.detect(x, refs), warmup, repeats)

    def run_sequence(k: int) -> None:
        current = None
        for i in range(sequence_length):
            frame = frames[i % len(frames)]
            if i % k == 0:
                current = model.reference(frame)
            model.detect(frame, current)

    rows = []
    for k in key_intervals:
        per_frame = [t / sequence_length for t in time_forward(lambda: run_sequence(k), 1, max(3, repeats // 4))]
        rows.append(
            BenchRow(
                name=name, kind="temporal", params_m=params, gflops=gflops,
                forward_ms_median=statistics.median(per_frame), forward_ms_p90=_percentile(per_frame, 0.9),
                input_size=size, repeats=len(per_frame), key_interval=k,
                reference_ms=statistics.median(rg_times), refinement_ms=statistics.median(rd_times),
            )
        )
    return rows


def _drnet_for(name: str) -> str:
    """The per-frame DRNet with the same backbone family as a temporal config (``tdrnet_lite`` -> ``drnet_lite``,
    and a variant such as ``tdrnet_lite_tcb`` -> ``drnet_lite`` too), so the ratio compares like with like."""
    parts = name.split("_")
    drnet = "drnet_" + parts[1] if len(parts) > 1 else ""
    if drnet not in available_model_specs():
        raise ValueError(
            f"no per-frame DRNet config to compare '{name}' with (looked for '{drnet or 'drnet_<family>'}'); "
            "name a temporal config <arch>_<backbone family>[_...], e.g. tdrnet_lite_tcb"
        )
    return drnet


DEFAULT_BACKBONE_SIZE = (320, 320)  # a bare backbone has no config to take a size from


def _sized(spec: ModelSpec, size: tuple[int, int] | None) -> ModelSpec:
    return spec if size is None else spec.with_input_size(*size)


def split_sized_name(entry: str, size: tuple[int, int] | None) -> tuple[str, tuple[int, int] | None]:
    """``"tdrnet_lite_tcb@320x448"`` -> the config and its own size (height first), so one run can time one config at
    several sizes, each against a DRNet reference at the same size; a bare name keeps ``size``."""
    match = re.fullmatch(r"(.+)@(\d+(?:[xX]\d+)?)", entry)
    if match is None:  # a bare name, or a path that merely contains '@': loading it says what is wrong
        return entry, size
    return match.group(1), parse_size_hw(match.group(2))


def run_benchmark(
    models: Sequence[str] = DEFAULT_MODELS,
    backbones: Sequence[str] = DEFAULT_BACKBONES,
    size: tuple[int, int] | None = None,
    threads: int = 2,
    warmup: int = 5,
    repeats: int = 20,
    num_classes: int = 4,
    progress: Callable[[str], None] | None = None,
    tune_allocator: bool = True,
    temporal: Sequence[str] = DEFAULT_TEMPORAL,
    key_intervals: Sequence[int] = DEFAULT_KEY_INTERVALS,
    sequence_length: int = 24,
) -> list[BenchRow]:
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    configure_cpu_runtime(threads, tune_allocator)
    rows = []
    # size None: every config at its own input_size (a probe trained at 384x512 is timed at 384x512), backbones at
    # 320x320. A size given applies to everything but NAME@HxW entries, which keep their own. Reference rows are
    # keyed by size too: a ratio to DRNet only means something when both ran at the same size.
    by_key: dict[tuple[str, tuple[int, int]], BenchRow] = {}
    for entry in models:
        if progress:
            progress(f"model {entry}")
        name, own_size = split_sized_name(entry, size)
        spec = _sized(load_model_spec(name), own_size)
        model = build_model(spec, num_classes, pretrained_backbone=False)
        rows.append(bench_module(name, "model", model, spec.input_size, warmup, repeats))
        by_key[(spec.name, spec.input_size)] = rows[-1]  # by the config's name: a YAML path to drnet_lite counts
    for entry in temporal:
        if progress:
            progress(f"temporal {entry}")
        name, own_size = split_sized_name(entry, size)
        spec = _sized(load_model_spec(name), own_size)  # a name or a YAML path (probe configs)
        if not spec.is_temporal:
            raise ValueError(f"'{name}' is not a temporal (trnet/tdrnet) model config")
        drnet = _drnet_for(spec.name)
        if (drnet, spec.input_size) not in by_key:  # the ratio is only meaningful within one run
            if progress:
                progress(f"model {drnet} at {spec.input_size[0]}x{spec.input_size[1]} (reference for {name})")
            ref_spec = load_model_spec(drnet).with_input_size(*spec.input_size)
            ref = bench_module(drnet, "model", build_model(ref_spec, num_classes, False), spec.input_size, warmup, repeats)
            by_key[(drnet, spec.input_size)] = ref
            rows.append(ref)
        reference = by_key[(drnet, spec.input_size)]
        model = build_model(spec, num_classes, pretrained_backbone=False)
        for row in bench_temporal(spec.name, model, spec.input_size, key_intervals, warmup, repeats, sequence_length):
            row.speedup_vs_drnet = reference.forward_ms_median / row.forward_ms_median
            rows.append(row)
    for name in backbones:
        if progress:
            progress(f"backbone {name}")
        kwargs = {"pretrained": False} if name.startswith("efficientnet") else {}
        backbone_size = size or DEFAULT_BACKBONE_SIZE
        rows.append(bench_module(name, "backbone", build_backbone(name, **kwargs), backbone_size, warmup, repeats))
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """Markdown table. For temporal rows GFLOPs is RG + RD on one frame (a key frame) and ms is per frame."""
    header = (
        f"| {'name':<18} | {'kind':<8} | {'params (M)':>10} | {'GFLOPs':>7} | {'fwd ms (median)':>15} | "
        f"{'fwd ms (p90)':>12} | {'FPS':>6} | {'RG ms':>6} | {'RD ms':>6} | {'x DRNet':>7} | {'input HxW':>9} |"
    )
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    opt = lambda v, fmt: format(v, fmt) if v is not None else "-"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r.label:<18} | {r.kind:<8} | {r.params_m:>10.2f} | {r.gflops:>7.2f} | {r.forward_ms_median:>15.1f} | "
            f"{r.forward_ms_p90:>12.1f} | {1000.0 / r.forward_ms_median:>6.1f} | {opt(r.reference_ms, '6.1f'):>6} | "
            f"{opt(r.refinement_ms, '6.1f'):>6} | {opt(r.speedup_vs_drnet, '7.2f'):>7} | "
            f"{f'{r.input_size[0]}x{r.input_size[1]}':>9} |"
        )
    return "\n".join(lines)


def environment_info(threads: int) -> dict[str, object]:
    from .runtime import _allocator_tuned

    return {
        "torch": torch.__version__,
        "threads": threads,
        "allocator_tuned": _allocator_tuned,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: str | Path, rows: Sequence[BenchRow], threads: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment_info(threads), "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(payload, indent=2))
    return path
