"""The checkpoints this project ships in ``models/``, named in one place.

``uwdet results`` evaluates them, ``scripts/write_model_cards.py`` writes their cards,
``scripts/train_shipped_models.sh`` trains them, and the ROS node, ``uwdet run``, ``uwdet demo`` and the launch
file load :data:`VEHICLE_MODEL` by default. Keeping the list here means adding a model is one edit, not five.
"""
from __future__ import annotations

# Results-table order: per-frame baselines, then the paper's temporal pair (TRNet shares tdrnet_lite's RG), then
# the vehicle default (tdrnet_lite with a TCB neck before RD's head; not in the paper).
SHIPPED_MODELS: tuple[str, ...] = (
    "ssd4s_lite", "refinedet_lite", "drnet_lite", "trnet_lite", "tdrnet_lite", "tdrnet_lite_tcb",
)

# What runs on the vehicle unless a launch argument or parameter names another file: the most accurate shipped
# TDRNet that is still CPU real time (README "Results").
VEHICLE_MODEL = "tdrnet_lite_tcb"
DEFAULT_CHECKPOINT = f"models/{VEHICLE_MODEL}.pt"
