"""The checkpoints this project ships in ``models/``, named in one place.

``uwdet results`` evaluates them and ``scripts/write_model_cards.py`` writes their cards; the ROS node's
parameters, ``uwdet run``, ``uwdet demo`` and ``uwdet bag-eval`` load :data:`DEFAULT_CHECKPOINT` by default. Files
that cannot import Python keep their own copy, held to this one by tests: ``scripts/train_shipped_models.sh``
(``test_shipped_recipes.py``), ``config/detector.yaml`` and the launch file (``test/ros``, ``test_launch_and_run.py``).
"""
from __future__ import annotations

# Results-table order: per-frame baselines, then the paper's temporal pair (TRNet shares tdrnet_lite's RG), then
# tdrnet_lite with a TCB neck before RD's head (not in the paper), then three continuations of it: at 384x512, one
# more cycle on 4x the training videos, and the vehicle default, more cycles on 8x the training videos; last, the
# vehicle default given three more cycles at 384x512.
SHIPPED_MODELS: tuple[str, ...] = (
    "ssd4s_lite", "refinedet_lite", "drnet_lite", "trnet_lite", "tdrnet_lite", "tdrnet_lite_tcb",
    "tdrnet_lite_tcb_r384", "tdrnet_lite_tcb_more_data", "tdrnet_lite_tcb_480_videos",
    "tdrnet_lite_tcb_480_videos_r384",
)

# Models that are not trained from scratch but continue another shipped model's finished weights (every module,
# nothing frozen): config/train/NAME_ft_synth.yaml runs after the source's last cycle, and a model given more than
# one such cycle (CONTINUATION_CYCLES) follows it with NAME_ft_synth_cycle2.yaml, NAME_ft_synth_cycle3.yaml, ...
# tdrnet_lite_tcb_r384 is tdrnet_lite_tcb given one more 2000-iteration cycle at 384x512 input (docs/experiments.md,
# "Fine-tuning the vehicle model at 384x512"): the weights do not depend on the input size.
# tdrnet_lite_tcb_more_data is tdrnet_lite_tcb given one more 2000-iteration cycle at its own size on 240 training
# videos (`make data-synth-more`) instead of 60 (docs/experiments.md, "... more training videos ...").
# tdrnet_lite_tcb_480_videos is tdrnet_lite_tcb given more 2000-iteration cycles at its own size on 480 training
# videos (`make data-synth-480`): four cycles: the first gained little over 240 videos, the
# second +2.4 points, the third +1.9, the fourth +1.0 (docs/experiments.md, sessions 16 to 18).
# tdrnet_lite_tcb_480_videos_r384 is tdrnet_lite_tcb_480_videos given three more 2000-iteration cycles at 384x512 input
# on the same videos: +3.4 points, then +1.0, then +0.6 (docs/experiments.md, sessions 18-20).
CONTINUES: dict[str, str] = {
    "tdrnet_lite_tcb_r384": "tdrnet_lite_tcb",
    "tdrnet_lite_tcb_more_data": "tdrnet_lite_tcb",
    "tdrnet_lite_tcb_480_videos": "tdrnet_lite_tcb",
    "tdrnet_lite_tcb_480_videos_r384": "tdrnet_lite_tcb_480_videos",
}
# How many cycles a continuing model adds to its source (1 unless named here).
CONTINUATION_CYCLES: dict[str, int] = {"tdrnet_lite_tcb_480_videos": 4, "tdrnet_lite_tcb_480_videos_r384": 3}


def recipes_of(name: str) -> tuple[str, ...]:
    """The ``config/train`` recipes that train shipped model ``name``, in order; the last one's ``model.pt`` ships.

    Every model of the paper's set, and tdrnet_lite_tcb, is three 2000-iteration cycles (the same budget, so the
    results table compares like with like); a model in :data:`CONTINUES` is :data:`CONTINUATION_CYCLES` cycles
    (one unless named there) on top of its source."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"'{name}' is not a shipped model; the shipped ones are {', '.join(SHIPPED_MODELS)}")
    if name in CONTINUES:
        cycles = CONTINUATION_CYCLES.get(name, 1)
        return (f"{name}_ft_synth",) + tuple(f"{name}_ft_synth_cycle{i}" for i in range(2, cycles + 1))
    return (f"{name}_synth", f"{name}_synth_cycle2", f"{name}_synth_cycle3")


# The paper's TDRNet: the paper's claims in ``uwdet results`` are checked on it (TRNet shares its RG).
PAPER_TDRNET = "tdrnet_lite"

# What runs on the vehicle unless a launch argument or parameter names another file: the most accurate shipped
# TDRNet that keeps CPU real time on 2 cores with margin. tdrnet_lite_tcb_480_videos is tdrnet_lite_tcb's network
# (the same speed) trained on 8x the videos, and the most accurate 320x320 model; the 384x512 models are more
# accurate but have little margin over 30 FPS there (36.2 forward FPS in session 20; README "On the vehicle",
# docs/experiments.md).
VEHICLE_MODEL = "tdrnet_lite_tcb_480_videos"
DEFAULT_CHECKPOINT = f"models/{VEHICLE_MODEL}.pt"
