"""The checkpoints this project ships in ``models/``, named in one place.

``uwdet results`` evaluates them and ``scripts/write_model_cards.py`` writes their cards; the ROS node's
parameters, ``uwdet run``, ``uwdet demo`` and ``uwdet bag-eval`` load :data:`DEFAULT_CHECKPOINT` by default. Files
that cannot import Python keep their own copy, held to this one by tests: ``scripts/train_shipped_models.sh``
(``test_shipped_recipes.py``), ``config/detector.yaml`` and the launch file (``test/ros``, ``test_launch_and_run.py``).
"""
from __future__ import annotations

# Results-table order: per-frame baselines, then the paper's temporal pair (TRNet shares tdrnet_lite's RG), then
# the vehicle default (tdrnet_lite with a TCB neck before RD's head; not in the paper).
SHIPPED_MODELS: tuple[str, ...] = (
    "ssd4s_lite", "refinedet_lite", "drnet_lite", "trnet_lite", "tdrnet_lite", "tdrnet_lite_tcb",
)

# The paper's TDRNet: the paper's claims in ``uwdet results`` are checked on it (TRNet shares its RG).
PAPER_TDRNET = "tdrnet_lite"

# What runs on the vehicle unless a launch argument or parameter names another file: the most accurate shipped
# TDRNet that is still CPU real time (README "Results").
VEHICLE_MODEL = "tdrnet_lite_tcb"
DEFAULT_CHECKPOINT = f"models/{VEHICLE_MODEL}.pt"
