#!/usr/bin/env python3
"""What each exact inference rewrite buys: per-frame forward time of shipped checkpoints with and without them.

Three rewrites keep a network's outputs (to float rounding) and cut its CPU time: the deformable heads project their
input onto the output channels before sampling (``ops.deform_conv``), BatchNorms are folded into the convolutions
before them, and the weights are stored channels-last (both ``models.inference``). This times a k-frame video
sequence (RG on the key frame, RD on every frame, as ``uwdet bench-models`` does) under four settings, all in one process and in alternating rounds, so
the shared machine's drift hits every setting alike; it prints medians and the ratios to the old path and writes
JSON:

    .venv/bin/python scripts/bench_inference_rewrites.py models/tdrnet_lite_tcb_480_videos.pt \\
        models/tdrnet_lite_tcb_480_videos_r384.pt --json bench/inference_rewrites.json

Settings: ``before`` (block sampling, BatchNorm kept: the path up to session 18), ``projected`` (projection first,
BatchNorm kept), ``projected+folded`` (session 19's path), ``+channels_last`` (all three: what ``uwdet eval``,
``uwdet results`` and the node run on the CPU now). It also reports the largest output difference between
``before`` and ``+channels_last`` on one random frame.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from underwater_detection.engine.benchmark_models import environment_info
from underwater_detection.engine.runtime import configure_cpu_runtime
from underwater_detection.models.checkpoint import load_model
from underwater_detection.models.inference import fold_batch_norm, to_channels_last
from underwater_detection.ops import deform_conv

SETTINGS = ("before", "projected", "projected+folded", "+channels_last")
FINAL = SETTINGS[-1]


def _sequence(model: nn.Module, frame: torch.Tensor, k: int) -> None:
    refs = model.reference(frame)
    for _ in range(k):
        model.detect(frame, refs)


def _with_projection(enabled: bool, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with the projected order allowed (the default rule) or forced off."""
    if enabled:
        return fn()
    with deform_conv.block_order_only():
        return fn()


def bench_checkpoint(path: str, k: int, rounds: int, warmup: int) -> dict[str, Any]:
    plain, ckpt = load_model(path)
    if not hasattr(plain, "reference"):
        raise SystemExit(f"{path}: {ckpt.spec.name} is not a TRNet/TDRNet; this times key-frame sequences")
    folded = copy.deepcopy(plain)
    fold_batch_norm(folded)
    nhwc = to_channels_last(copy.deepcopy(folded))
    height, width = ckpt.spec.input_size
    frame = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    runs = {"before": (plain, False), "projected": (plain, True), "projected+folded": (folded, True),
            FINAL: (nhwc, True)}
    per_frame: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with torch.inference_mode():
        old = _with_projection(False, lambda: plain(frame))
        new = nhwc(frame)
        max_diff = max(float((a - b).abs().max()) for a, b in ((old.loc, new.loc), (old.conf, new.conf)))
        for _ in range(warmup):
            for model, projected in runs.values():
                _with_projection(projected, lambda m=model: _sequence(m, frame, k))
        for _ in range(rounds):
            for name, (model, projected) in runs.items():
                start = time.perf_counter()
                _with_projection(projected, lambda m=model: _sequence(m, frame, k))
                per_frame[name].append(1000.0 * (time.perf_counter() - start) / k)
    medians = {name: statistics.median(times) for name, times in per_frame.items()}
    return {
        "checkpoint": path, "model": ckpt.spec.name, "input_size": [height, width], "key_interval": k,
        "rounds": rounds, "per_frame_ms_median": medians,
        "speedup_vs_before": {name: medians["before"] / ms for name, ms in medians.items()},
        "max_abs_output_difference": max_diff,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | input | k | before ms | projected ms | projected+folded ms | +channels_last ms | speed-up | "
             "FPS before -> after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["per_frame_ms_median"]
        lines.append(
            f"| {r['model']} | {r['input_size'][0]}x{r['input_size'][1]} | {r['key_interval']} | {m['before']:.1f} | "
            f"{m['projected']:.1f} | {m['projected+folded']:.1f} | {m[FINAL]:.1f} | {r['speedup_vs_before'][FINAL]:.2f}x | "
            f"{1000 / m['before']:.1f} -> {1000 / m[FINAL]:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="TRNet/TDRNet checkpoint files")
    parser.add_argument("-k", "--key-interval", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds; each times every setting once")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the rows and the machine's facts here")
    args = parser.parse_args(argv)
    if args.key_interval < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("need --key-interval >= 1, --rounds >= 1, --warmup >= 0")
    configure_cpu_runtime(args.threads)
    rows = [bench_checkpoint(path, args.key_interval, args.rounds, args.warmup) for path in args.checkpoints]
    print(format_table(rows))
    for r in rows:
        print(f"{r['model']}: largest output difference before vs after {r['max_abs_output_difference']:.2e}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"environment": environment_info(args.threads), "command": " ".join(sys.argv),
                                   "rows": rows}, indent=2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
