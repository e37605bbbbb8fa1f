#!/usr/bin/env python3
"""The recall ceiling of a checkpoint on a COCO split, by object size and visible fraction
(see engine/recall_ceiling.py). Runs the detector exactly as `uwdet eval` does (frame order, tracking off, the
same per-image cap), so its ceiling belongs to the mAP that command prints.

    .venv/bin/python scripts/diagnose_misses.py models/tdrnet_lite_tcb.pt --data data/synth/test -k 4 \\
        --out out/misses_tdrnet_lite_tcb.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from underwater_detection.data.datasets import load_dataset
from underwater_detection.engine.evaluation import run_on_dataset, write_json
from underwater_detection.engine.recall_ceiling import grouped_recall, object_records, recall_at
from underwater_detection.engine.runtime import configure_cpu_runtime
from underwater_detection.engine.temporal import TemporalDetector
from underwater_detection.models.checkpoint import CheckpointError

FLOORS = (0.01, 0.1, 0.3, 0.5)
SIZE_EDGES = (0, 24, 32, 48, 64, 96, 1e9)
VISIBLE_EDGES = (0.0, 0.3, 0.4, 0.5, 0.6, 0.8, 0.95, 1.0001)


def visible_fractions(annotation_file: Path | None, dataset) -> list[np.ndarray | None]:
    """Per image in dataset order, the COCO annotations' ``visibility`` (the synthetic writer's field) in the order
    the loader reads the boxes; ``None`` for an image whose annotations do not all carry it or do not match the
    loader's boxes in number, and for every image when there is no COCO file (a VOC folder)."""
    if annotation_file is None or not annotation_file.is_file():
        return [None] * len(dataset)
    data = json.loads(annotation_file.read_text())
    per_image: dict[object, list[float | None]] = {}
    for ann in data.get("annotations", []):
        vis = ann.get("visibility")
        per_image.setdefault(_image_key(ann.get("image_id")), []).append(
            float(vis) if isinstance(vis, (int, float)) and not isinstance(vis, bool) else None)
    out: list[np.ndarray | None] = []
    for i in range(len(dataset)):
        image = dataset.annotations(i)
        values = per_image.get(_image_key(image.image_id), [])
        # a count that differs from the loader's boxes means this file is not the one the loader read: no guess
        known = len(values) == len(image.boxes) and not any(v is None for v in values)
        out.append(np.array(values, np.float64) if known else None)
    return out


def _image_key(image_id: object) -> object:
    """The loader turns numeric string ids into ints ("5" -> 5); key the raw file the same way."""
    try:
        return int(image_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return image_id


def _joint_recall(records, floor: float) -> list[dict[str, object]]:
    """Small-and-hidden against large-and-visible: the two failure causes compound."""
    rows = []
    for size_name, size_ok in (("< 48 px", lambda r: r.size < 48), (">= 96 px", lambda r: r.size >= 96)):
        for vis_name, vis_ok in (("visible < 0.8", lambda r: r.visible < 0.8), ("visible >= 0.8", lambda r: r.visible >= 0.8)):
            inside = [r for r in records if size_ok(r) and vis_ok(r)]
            if inside:
                rows.append({"size": size_name, "visible": vis_name, "objects": len(inside),
                             f"recall@{floor:g}": recall_at(inside, floor)})
    return rows


def _print_table(title: str, rows: list[dict[str, float]], unit: str) -> None:
    print(f"\n{title}")
    print("| " + unit + " | objects | share | " + " | ".join(f"recall, score >= {f:g}" for f in FLOORS) + " |")
    print("|---" * (3 + len(FLOORS)) + "|")
    for row in rows:
        hi = "" if row["hi"] >= 1e8 else f"{row['hi']:g}"
        print(f"| [{row['lo']:g}, {hi}) | {row['objects']} | {row['share']:.3f} | "
              + " | ".join(f"{row[f'recall@{f:g}']:.3f}" for f in FLOORS) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data", default="data/synth/test", help="COCO json or a folder with annotations.json")
    p.add_argument("-k", type=int, default=None, help="key-frame interval (default: the model's)")
    p.add_argument("-e", type=float, default=None, help="soft coefficient (default: the model's)")
    p.add_argument("--max-detections", type=int, default=100, help="per image, as `uwdet eval` (default 100)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="write the tables as JSON")
    args = p.parse_args(argv)
    configure_cpu_runtime(args.threads)
    annotation_file = Path(args.data) / "annotations.json" if Path(args.data).is_dir() else Path(args.data)
    options: dict = {"tracking": False}
    if args.k is not None:
        options["key_interval"] = args.k
    if args.e is not None:
        options["soft_coefficient"] = args.e
    try:
        detector = TemporalDetector.from_checkpoint(args.checkpoint, device="cpu", **options)
        dataset = load_dataset(args.data, class_names=list(detector.class_names))
        # read before the (minutes-long) inference run, so a bad file fails first
        by_index = visible_fractions(annotation_file if annotation_file.suffix == ".json" else None, dataset)
    except (CheckpointError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detector.postprocess_config = detector.postprocess_config.with_max_detections(args.max_detections)
    preds, gts, _, _, _, _ = run_on_dataset(detector, dataset, fps=dataset.frame_rate() or 10.0)
    # run_on_dataset visits the images sequence by sequence; line the visible fractions up in that order
    order = [i for indices in dataset.sequences().values() for i in indices]
    records = object_records(preds, gts, [by_index[i] for i in order])
    overall = {f"recall@{f:g}": recall_at(records, f) for f in FLOORS}
    names = list(detector.class_names)
    per_class = {name: recall_at([r for r in records if r.label == c], FLOORS[0]) for c, name in enumerate(names)}
    report = {
        "checkpoint": args.checkpoint, "data": args.data, "frames": len(preds), "objects": len(records),
        "key_interval": detector.key_interval if detector.is_temporal else None,
        "soft_coefficient": detector.soft_coefficient if detector.is_temporal else None,
        "overall": overall,
        f"per_class_recall@{FLOORS[0]:g}": per_class,
        "by_size": grouped_recall(records, "size", SIZE_EDGES, FLOORS),
        "by_visible": grouped_recall(records, "visible", VISIBLE_EDGES, FLOORS),
        "size_x_visible": _joint_recall(records, FLOORS[0]),
    }
    print(f"{args.checkpoint} on {args.data}: {len(preds)} frames, {len(records)} non-difficult objects, "
          f"k={report['key_interval']} e={report['soft_coefficient']}")
    print("recall at IoU 0.5, same class: " + ", ".join(f"score >= {f:g}: {overall[f'recall@{f:g}']:.3f}" for f in FLOORS))
    # VOC mAP is a mean over classes, each capped by its own recall: the mean of these is the cap on mAP@0.5
    print(f"per class at score >= {FLOORS[0]:g}: " + ", ".join(f"{n} {v:.3f}" for n, v in per_class.items())
          + f"; mean {np.nanmean(list(per_class.values())):.3f}")
    _print_table("by size (sqrt of box area, original image px)", report["by_size"], "size px")
    if report["by_visible"]:
        _print_table("by visible fraction", report["by_visible"], "visible")
        print(f"\nsize x visible fraction, recall at score >= {FLOORS[0]:g}")
        for row in report["size_x_visible"]:
            print(f"  {row['size']:>8}, {row['visible']:<14} {row['objects']:>6} objects  {row[f'recall@{FLOORS[0]:g}']:.3f}")
    if args.out:
        print(f"\nwrote {write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
