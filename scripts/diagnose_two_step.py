#!/usr/bin/env python3
"""Where a two-step detector loses objects, per COCO size bucket (see engine/two_step_diagnosis.py).

    .venv/bin/python scripts/diagnose_two_step.py models/refinedet_lite.pt models/drnet_lite.pt \\
        --data data/synth/test --every 10 --out out/two_step_diagnosis.json
"""
from __future__ import annotations

import argparse
import sys

import torch

from underwater_detection.data.datasets import load_dataset
from underwater_detection.engine.evaluation import write_json
from underwater_detection.engine.two_step_diagnosis import diagnose_checkpoint, summarise
from underwater_detection.models.checkpoint import CheckpointError

COLUMNS = (("objects", "{:d}"), ("anchor_iou", "{:.2f}"), ("refined_iou", "{:.2f}"), ("with_odm_positive", "{:.2f}"),
           ("odm_positives", "{:.0f}"), ("detected_iou", "{:.2f}"), ("class_score", "{:.2f}"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", default="data/synth/test")
    p.add_argument("--every", type=int, default=10, help="every N-th frame of the split")
    p.add_argument("--score-floor", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="write the tables as JSON")
    args = p.parse_args(argv)
    if args.every < 1:
        p.error("--every must be >= 1")
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data)
    indices = list(range(0, len(dataset), args.every))
    report = {"data": args.data, "frames": len(indices), "score_floor": args.score_floor, "models": {}}
    for path in args.checkpoints:
        try:
            table = summarise(diagnose_checkpoint(path, dataset, indices, args.score_floor))
        except (ValueError, CheckpointError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
        report["models"][path] = table
        print(f"\n{path} ({len(indices)} frames of {args.data})")
        print("| size | " + " | ".join(name for name, _ in COLUMNS) + " |")
        print("|---" * (len(COLUMNS) + 1) + "|")
        for bucket, row in table.items():
            print(f"| {bucket} | " + " | ".join(fmt.format(row[name]) for name, fmt in COLUMNS) + " |")
    if args.out:
        print(f"\nwrote {write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
