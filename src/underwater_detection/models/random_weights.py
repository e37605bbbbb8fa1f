"""Random-weights checkpoints: real model files for tests and demos before trained weights exist.

Such a checkpoint goes through exactly the same loading, preprocessing and post-processing as a trained
one, so every pipeline (node, bag evaluation, demo) can be exercised end to end. Its provenance says
``"untrained": True`` so that every consumer can warn loudly (its detections are noise).

Fresh initialisation leaves the class logits almost equal (every score ~1/(C+1)), which makes all boxes
look alike; ``spread_scores`` multiplies the final classification layers so scores spread over (0, 1) and
downstream logic (score thresholds, NMS, target selection) sees varied, still meaningless, detections.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .checkpoint import save_checkpoint
from .heads import DeformablePredictor
from .registry import build_model
from .spec import load_model_spec

DEFAULT_CLASS_NAMES: tuple[str, ...] = ("sea_cucumber", "sea_urchin", "scallop", "starfish")
UNTRAINED_NOTE = "random initialisation, NOT TRAINED: detections are meaningless"


def is_untrained(provenance: dict | None) -> bool:
    """True for checkpoints written here (``untrained``) or without any training record (``iterations``)."""
    prov = provenance or {}
    return bool(prov.get("untrained")) or "iterations" not in prov


def _spread_class_logits(model: torch.nn.Module, factor: float) -> None:
    """Scale the classification outputs: convs named ``*conf*`` and the class rows of deformable heads
    (whose one conv stacks localisation rows first, then class rows)."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d) and "conf" in name.lower():
                module.weight.mul_(factor)
            elif isinstance(module, DeformablePredictor):
                first_class_row = module.split[0]
                for path in module.paths:
                    for conv in path:
                        conv.weight[first_class_row:].mul_(factor)


def write_random_checkpoint(
    path: str | Path,
    model_name: str = "tdrnet_lite",
    class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
    seed: int = 0,
    input_size: tuple[int, int] | None = None,
    spread_scores: float = 0.0,
) -> Path:
    """Build ``model_name`` from ``config/models`` with seeded random weights and save it as a checkpoint.

    ``input_size`` (height, width) overrides the config's (tests use small inputs for speed);
    ``spread_scores`` > 0 scales the classification layers (see the module docstring).
    """
    spec = load_model_spec(model_name)
    if input_size is not None:
        spec = spec.with_input_size(*input_size)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(spec, len(class_names), pretrained_backbone=False)
        if spread_scores > 0:
            _spread_class_logits(model, spread_scores)
    provenance = {"untrained": True, "weights": UNTRAINED_NOTE, "seed": seed, "spread_scores": spread_scores}
    return save_checkpoint(path, model.eval(), spec, list(class_names), provenance=provenance)
