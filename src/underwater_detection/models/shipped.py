"""The checkpoints this project ships in ``models/``, named in one place.

``uwdet results`` evaluates them and ``scripts/write_model_cards.py`` writes their cards; the ROS node's
parameters, ``uwdet run``, ``uwdet demo`` and ``uwdet bag-eval`` load :data:`DEFAULT_CHECKPOINT` by default. Files
that cannot import Python keep their own copy, held to this one by tests: ``scripts/train_shipped_models.sh``
(``test_shipped_recipes.py``), ``config/detector.yaml`` and the launch file (``test/ros``, ``test_launch_and_run.py``).
"""
from __future__ import annotations

# Results-table order: per-frame baselines, then the paper's temporal pair (TRNet shares tdrnet_lite's RG), then
# tdrnet_lite with a TCB neck before RD's head (not in the paper), then two continuations of it: at 384x512, and the
# vehicle default, one more cycle on 4x the training videos.
SHIPPED_MODELS: tuple[str, ...] = (
    "ssd4s_lite", "refinedet_lite", "drnet_lite", "trnet_lite", "tdrnet_lite", "tdrnet_lite_tcb",
    "tdrnet_lite_tcb_r384", "tdrnet_lite_tcb_more_data",
)

# Models that are not trained from scratch but continue another shipped model's finished weights (every module,
# nothing frozen), with one recipe, config/train/NAME_ft_synth.yaml, that runs after the source's last cycle.
# tdrnet_lite_tcb_r384 is tdrnet_lite_tcb given one more 2000-iteration cycle at 384x512 input (docs/experiments.md,
# "Fine-tuning the vehicle model at 384x512"): the weights do not depend on the input size.
# tdrnet_lite_tcb_more_data is tdrnet_lite_tcb given one more 2000-iteration cycle at its own size on 240 training
# videos (`make data-synth-more`) instead of 60 (docs/experiments.md, "... more training videos ...").
CONTINUES: dict[str, str] = {"tdrnet_lite_tcb_r384": "tdrnet_lite_tcb", "tdrnet_lite_tcb_more_data": "tdrnet_lite_tcb"}


def recipes_of(name: str) -> tuple[str, ...]:
    """The ``config/train`` recipes that train shipped model ``name``, in order; the last one's ``model.pt`` ships.

    Every model of the paper's set, and tdrnet_lite_tcb, is three 2000-iteration cycles (the same budget, so the
    results table compares like with like); a model in :data:`CONTINUES` is one cycle on top of its source."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"'{name}' is not a shipped model; the shipped ones are {', '.join(SHIPPED_MODELS)}")
    if name in CONTINUES:
        return (f"{name}_ft_synth",)
    return (f"{name}_synth", f"{name}_synth_cycle2", f"{name}_synth_cycle3")


# The paper's TDRNet: the paper's claims in ``uwdet results`` are checked on it (TRNet shares its RG).
PAPER_TDRNET = "tdrnet_lite"

# What runs on the vehicle unless a launch argument or parameter names another file: the most accurate shipped
# TDRNet that keeps CPU real time on 2 cores with margin. tdrnet_lite_tcb_more_data is tdrnet_lite_tcb's network
# (the same speed) with more training data, and the most accurate shipped model; tdrnet_lite_tcb_r384 sits at the
# 30 FPS line there (README "On the vehicle", docs/experiments.md).
VEHICLE_MODEL = "tdrnet_lite_tcb_more_data"
DEFAULT_CHECKPOINT = f"models/{VEHICLE_MODEL}.pt"
