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


def detection_step(
    model: nn.Module,
    criterion: MultiBoxLoss,
    priors: torch.Tensor,
    images: torch.Tensor,
    targets: Sequence[Targets],
    optimizer: torch.optim.Optimizer,
    soft_coefficient: float = 1.0,
    max_grad_norm: float | None = 10.0,
) -> dict[str, float]:
    """Forward, loss, backward, (clipped) step. Raises on a non-finite loss rather than corrupting weights."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    terms = criterion(model(images), priors, targets, soft_coefficient=soft_coefficient)
    loss = terms["loss"]
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"non-finite loss {loss.item()} ({ {k: float(v) for k, v in terms.items()} })")
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return {k: float(v.detach()) for k, v in terms.items()}
