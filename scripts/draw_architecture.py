#!/usr/bin/env python3
"""Draw docs/architecture.png: the ROS graph on the vehicle and the layers under it (README "Architecture").

Drawn from code rather than a binary made by hand so it can be kept in step with the package:
    .venv/bin/python scripts/draw_architecture.py
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "architecture.png"


def box(ax, x, y, w, h, title, body="", color="#dbe9f6"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="#33506e", lw=1.2))
    ax.text(x + w / 2, y + h - 0.18, title, ha="center", va="top", fontsize=10, weight="bold")
    if body:
        ax.text(x + w / 2, y + h - 0.5, body, ha="center", va="top", fontsize=7.6, linespacing=1.35)


def arrow(ax, x1, y1, x2, y2, label="", dy=0.12):
    ax.add_patch(FancyArrowPatch((x1, y1), (x2, y2), arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#33506e"))
    if label:
        ax.text((x1 + x2) / 2, (y1 + y2) / 2 + dy, label, ha="center", va="bottom", fontsize=7.2, style="italic")


def main() -> None:
    fig, ax = plt.subplots(figsize=(12, 6.6), dpi=110)
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 6.6)
    ax.axis("off")

    # --- ROS graph (top)
    ax.text(0.1, 6.45, "On the vehicle (ROS 2): ros2 launch underwater_detection underwater_detection.launch.py",
            fontsize=10, weight="bold", va="top")
    box(ax, 0.1, 4.2, 2.2, 1.8, "camera driver", "sensor_msgs/Image\nor CompressedImage\n+ CameraInfo\n(or bag-play /\nros2 bag play)", "#eeeeee")
    box(ax, 3.0, 3.9, 3.6, 2.3, "detector_node (lifecycle)",
        "QoS depth 1 -> newest-frame worker\n(drops counted)\nTemporalDetector per camera frame_id:\n"
        "key frame every k: RG -> ar, offsets\nevery frame: RD, decode(e*ar)\nNMS -> IoU tracker -> track ids")
    box(ax, 7.5, 4.75, 2.2, 1.45, "grasp_target_node",
        "class priority, score,\nsize, reach area;\nhysteresis by track id;\ntimeout: nothing stale")
    box(ax, 7.5, 3.45, 2.2, 0.9, "navigation", "Detection2DArray", "#eeeeee")
    box(ax, 10.2, 4.75, 1.7, 1.45, "manipulator\nplanner", "\n\n", "#eeeeee")
    arrow(ax, 2.3, 5.1, 3.0, 5.1, "images")
    arrow(ax, 6.6, 5.45, 7.5, 5.45, "~/detections")
    arrow(ax, 6.6, 3.95, 7.5, 3.95, "~/detections")
    arrow(ax, 9.7, 5.45, 10.2, 5.45, "target")
    ax.text(3.05, 3.8, "also: ~/label_info (transient local),\n~/debug_image (on demand), /diagnostics (1 Hz)",
            fontsize=7.2, va="top")
    ax.text(7.55, 4.68, "~/target, ~/target_point,\n~/target_bearing, ~/target_active", fontsize=6.6, va="top")

    # --- layers (bottom)
    ax.text(0.1, 3.05, "Package layers (imports point down; only ros/ imports rclpy)", fontsize=10, weight="bold", va="top")
    layers = [
        ("ros/", "nodes, message conversion, QoS, diagnostics, bag-play / record, uwdet run, demo", "#f6e3db"),
        ("bags/", "rosbag2 read / write (rosbags), bag-eval: mAP, latency, FPS offline", "#f6efdb"),
        ("engine/", "TemporalDetector, tracker, grasp selection, trainer (DDP, AMP), evaluation, benchmarks", "#e3f6db"),
        ("data/", "COCO / VOC datasets, SSD augmentation, synthetic underwater video (uwdet synth)", "#dbf6f1"),
        ("models/", "backbones, TCB, deformable heads, SSD4s / RefineDet / DRNet / TRNet / TDRNet, checkpoints", "#dbe9f6"),
        ("ops/", "anchors, box coding, matching, losses, NMS, deformable conv (pure PyTorch)", "#e6dbf6"),
    ]
    y = 2.62
    for name, text, color in layers:
        ax.add_patch(FancyBboxPatch((0.2, y - 0.36), 11.6, 0.36, boxstyle="round,pad=0.01,rounding_size=0.05",
                                    fc=color, ec="#666666", lw=0.8))
        ax.text(0.35, y - 0.18, name, fontsize=9, weight="bold", va="center", family="monospace")
        ax.text(1.6, y - 0.18, text, fontsize=8.4, va="center")
        y -= 0.44
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
