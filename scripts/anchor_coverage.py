"""How many ground truths have an anchor they could be matched to, for a range of anchor scale factors.

Why: the matcher makes an anchor positive above IoU 0.5 and otherwise force-matches each object to its single
best anchor. An object whose best anchor is far below 0.5 gets one weak positive and a regression target the
head rarely learns, so recall on small objects is capped by the anchor layout before training starts. This
script measures that cap on a COCO-format split at the model's input size (frames are resized, not
letterboxed, as in training), so an anchor probe can be chosen from data rather than guessed.

    .venv/bin/python scripts/anchor_coverage.py --data data/synth/train/annotations.json --factors 2 3 4
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from underwater_detection.ops.box_coding import box_iou, center_to_corners
from underwater_detection.ops.priors import PriorConfig, generate_priors


def normalised_boxes(annotations_path: Path, keep_difficult: bool) -> tuple[torch.Tensor, list[str]]:
    """Non-ignored ground truths as corners normalised by their image's size, which is how the matcher sees them
    after the resize to any input size, with each box's class name (the per-class rows show which class the
    layout fails: a long thin sea cucumber is not matched by the same anchors as a round urchin)."""
    coco = json.loads(annotations_path.read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    names = {cat["id"]: cat["name"] for cat in coco.get("categories", [])}
    rows = []
    labels = []
    for ann in coco["annotations"]:
        if not keep_difficult and (ann.get("difficult") or ann.get("ignore")):
            continue
        x, y, w, h = ann["bbox"]
        if w <= 0 or h <= 0:
            continue
        iw, ih = sizes[ann["image_id"]]
        rows.append([x / iw, y / ih, (x + w) / iw, (y + h) / ih])
        labels.append(names.get(ann["category_id"], str(ann["category_id"])))
    if not rows:
        raise SystemExit(f"{annotations_path}: no usable ground-truth boxes")
    return torch.tensor(rows, dtype=torch.float32), labels


def best_anchor_iou(boxes: torch.Tensor, config: PriorConfig, height: int, width: int) -> torch.Tensor:
    anchors = center_to_corners(generate_priors(height, width, config))
    return torch.cat([box_iou(chunk, anchors).max(dim=1).values for chunk in boxes.split(4096)])


def summarise(best: torch.Tensor, config: PriorConfig) -> dict[str, float]:
    return {
        "sizes_px": [round(s, 1) for s in config.level_sizes()],
        "no_anchor_over_0.5_pct": round(100.0 * float((best <= 0.5).float().mean()), 1),
        "no_anchor_over_0.4_pct": round(100.0 * float((best <= 0.4).float().mean()), 1),
        "median_best_iou": round(float(best.median()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synth/train/annotations.json"))
    parser.add_argument("--factors", type=float, nargs="+", default=[2.0, 2.5, 3.0, 4.0])
    parser.add_argument("--input-size", type=int, nargs=2, default=[320, 320], metavar=("H", "W"))
    parser.add_argument("--aspect-ratios", type=float, nargs="+", default=list(PriorConfig().aspect_ratios),
                        help="anchor aspect ratios (w/h) at every location; default: the shipped set")
    parser.add_argument("--per-class", action="store_true", help="also print one row per class for each factor")
    parser.add_argument("--keep-difficult", action="store_true", help="count difficult/ignored boxes too")
    args = parser.parse_args()
    height, width = args.input_size
    boxes, labels = normalised_boxes(args.data, args.keep_difficult)
    side = ((boxes[:, 2] - boxes[:, 0]) * width * (boxes[:, 3] - boxes[:, 1]) * height).sqrt()
    q = torch.quantile(side, torch.tensor([0.05, 0.5, 0.95]))
    print(f"{len(boxes)} boxes; sqrt(area) at {height}x{width}: p5 {q[0]:.0f}, p50 {q[1]:.0f}, p95 {q[2]:.0f} px")
    print(f"aspect ratios (w/h): {[round(r, 3) for r in args.aspect_ratios]}")
    print(f"{'factor':>6}  {'class':<14} {'anchor sizes (px)':<28} {'IoU<=0.5':>9} {'IoU<=0.4':>9} {'median best':>12}")
    classes = sorted(set(labels)) if args.per_class else []
    for factor in args.factors:
        config = PriorConfig(scale_factor=factor, aspect_ratios=tuple(args.aspect_ratios))
        best = best_anchor_iou(boxes, config, height, width)
        groups = [("all", best)] + [
            (name, best[torch.tensor([label == name for label in labels])]) for name in classes]
        for name, subset in groups:
            row = summarise(subset, config)
            print(f"{factor:>6g}  {name:<14} {str(row['sizes_px']):<28} {row['no_anchor_over_0.5_pct']:>8}% "
                  f"{row['no_anchor_over_0.4_pct']:>8}% {row['median_best_iou']:>12}")


if __name__ == "__main__":
    main()
