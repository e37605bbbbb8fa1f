"""``uwdet bench-models``: parameters, FLOPs and CPU forward latency of every detector and backbone.

Latency is the median of ``repeats`` timed forwards after ``warmup`` untimed ones, batch 1, no_grad, eval
mode, with ``torch.set_num_threads(threads)``: the figure that decides whether a model is real-time on the
vehicle's CPU fallback or the 2-core CI machine. Medians, because shared machines are noisy; never use these
numbers as pass/fail thresholds in tests.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (1 multiply-add = 2 FLOPs). It counts the
convolutions, including the one that realises each deformable conv, but not ``grid_sample``'s bilinear
sampling, so deformable models are slightly undercounted; the latency column is the honest cost.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.backbones import build_backbone
from ..models.registry import build_model
from ..models.spec import load_model_spec
from .runtime import configure_cpu_runtime

DEFAULT_MODELS = (
    "ssd4s_lite", "refinedet_lite", "drnet_lite",
    "ssd4s_effnet", "refinedet_effnet", "drnet_effnet",
    "ssd4s_vgg16", "refinedet_vgg16", "drnet_vgg16",
)
DEFAULT_BACKBONES = ("lite", "efficientnet_lite0", "vgg16")


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
    x = torch.randn(1, 3, *size)
    times = time_forward(lambda: module(x), warmup, repeats)
    return BenchRow(
        name=name,
        kind=kind,
        params_m=count_params(module) / 1e6,
        gflops=count_gflops(module, x),
        forward_ms_median=statistics.median(times),
        forward_ms_p90=_percentile(times, 0.9),
        input_size=size,
        repeats=repeats,
    )


def run_benchmark(
    models: Sequence[str] = DEFAULT_MODELS,
    backbones: Sequence[str] = DEFAULT_BACKBONES,
    size: tuple[int, int] = (320, 320),
    threads: int = 2,
    warmup: int = 5,
    repeats: int = 20,
    num_classes: int = 4,
    progress: Callable[[str], None] | None = None,
    tune_allocator: bool = True,
) -> list[BenchRow]:
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    configure_cpu_runtime(threads, tune_allocator)
    rows = []
    for name in models:
        if progress:
            progress(f"model {name}")
        spec = load_model_spec(name).with_input_size(*size)
        model = build_model(spec, num_classes, pretrained_backbone=False)
        rows.append(bench_module(name, "model", model, size, warmup, repeats))
    for name in backbones:
        if progress:
            progress(f"backbone {name}")
        kwargs = {"pretrained": False} if name.startswith("efficientnet") else {}
        rows.append(bench_module(name, "backbone", build_backbone(name, **kwargs), size, warmup, repeats))
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    header = f"| {'name':<18} | {'kind':<8} | {'params (M)':>10} | {'GFLOPs':>7} | {'fwd ms (median)':>15} | {'fwd ms (p90)':>12} | {'FPS':>6} |"
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for r in rows:
        lines.append(
            f"| {r.name:<18} | {r.kind:<8} | {r.params_m:>10.2f} | {r.gflops:>7.2f} | {r.forward_ms_median:>15.1f} | "
            f"{r.forward_ms_p90:>12.1f} | {1000.0 / r.forward_ms_median:>6.1f} |"
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
