"""The smallest reusable piece of training: one optimisation step of a detector on a batch.

The full trainer (schedules, logging, resume, DDP) builds on this; tests use it directly to prove that a
model can fit data, which checks losses, matching, box coding and decoding end to end.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..ops.losses import MultiBoxLoss, Targets

# Which loss terms an optimisation step minimises. "joint" trains everything at once; the two-stage recipe
# for TRNet/TDRNet (paper Fig. 5b) first trains the reference generator like an ARM ("reference"), then
# freezes it (see `freeze`) and trains the refinement detector like an ODM ("refinement").
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "joint": ("arm_loc", "arm_conf", "odm_loc", "odm_conf"),
    "reference": ("arm_loc", "arm_conf"),
    "refinement": ("odm_loc", "odm_conf"),
}


def objective_loss(terms: dict[str, torch.Tensor], objective: str) -> torch.Tensor:
    """Sum of the objective's terms only. Deliberately no ``0 * loss`` seed: that would give the networks
    outside the objective zero gradients instead of none, and SGD would still apply weight decay and
    momentum to them."""
    parts = [terms[k] for k in OBJECTIVES[objective] if k in terms]
    if not parts:
        raise ValueError(f"objective {objective!r} has no loss terms for this model ({sorted(terms)})")
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def freeze(module: nn.Module) -> nn.Module:
    """Stop a sub-network from learning: no gradients, and BatchNorm statistics fixed (eval mode).

    ``detection_step`` calls ``model.train()``, which would put BN back in training mode; frozen modules are
    marked and re-frozen there."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    module._uwdet_frozen = True  # type: ignore[attr-defined]
    return module


def forward_at(model: nn.Module, images: torch.Tensor, soft_coefficient: float = 1.0):
    """The training forward at soft coefficient e. Only TRNet/TDRNet take e (TDRNet's feature offsets are
    computed from ``e * ar``); per-frame detectors have none and always train at e = 1."""
    if soft_coefficient == 1.0:
        return model(images)
    return model(images, soft_coefficient=soft_coefficient)


def _train_mode(model: nn.Module) -> None:
    model.train()
    for m in model.modules():
        if getattr(m, "_uwdet_frozen", False):
            m.eval()


def detection_step(
    model: nn.Module,
    criterion: MultiBoxLoss,
    priors: torch.Tensor,
    images: torch.Tensor,
    targets: Sequence[Targets],
    optimizer: torch.optim.Optimizer,
    soft_coefficient: float = 1.0,
    max_grad_norm: float | None = 10.0,
    objective: str = "joint",
) -> dict[str, float]:
    """Forward, loss, backward, (clipped) step. Raises on a non-finite loss rather than corrupting weights.

    ``soft_coefficient`` is TRNet/TDRNet's ``e``, applied to the refined anchors exactly as at test time.
    The returned terms include ``grad_norm``, the global gradient norm *before* clipping, so a log shows how
    long the clip binds (a clip that binds for most of a run changes the effective learning rate, and more so
    for a model with more parameters).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown training objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    _train_mode(model)
    optimizer.zero_grad(set_to_none=True)
    terms = criterion(forward_at(model, images, soft_coefficient), priors, targets, soft_coefficient=soft_coefficient)
    loss = objective_loss(terms, objective)
    terms["objective_loss"] = loss
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"non-finite loss {loss.item()} ({ {k: float(v) for k, v in terms.items()} })")
    loss.backward()
    terms["grad_norm"] = clip_gradients(model, max_grad_norm)
    optimizer.step()
    return {k: float(v.detach()) for k, v in terms.items()}


def clip_gradients(model: nn.Module, max_grad_norm: float | None) -> torch.Tensor:
    """Clip to ``max_grad_norm`` when set; either way return the norm the step had before clipping."""
    if max_grad_norm is not None:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
