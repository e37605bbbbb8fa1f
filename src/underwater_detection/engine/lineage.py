"""Training history that travels inside a checkpoint.

A shipped model is several training cycles, each starting from the previous cycle's ``model.pt``. The cycles'
records (command, recipe, seed, wall time, git commit) used to exist only in those earlier files under ``runs/``,
so a model card written on a machine without them could no longer list how the weights were made. Each new
checkpoint therefore copies its start point's history into its own provenance:

``earlier_cycles``  the provenance of every earlier cycle of the same model, oldest first (each without its own
                    ``earlier_cycles``: the list is flat, not nested);
``init_source``     what the recipe's ``init`` read: file, the SHA-256 of the weights it held (of the tensors, not
                    of the file, so re-saving a checkpoint with new metrics or history keeps it), the model, the
                    modules copied and those frozen. An init from another model (TRNet's frozen RG from TDRNet)
                    ends the history there: that model's cycles are its own card's business.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

if TYPE_CHECKING:
    from ..models.checkpoint import Checkpoint

EARLIER_CYCLES = "earlier_cycles"
INIT_SOURCE = "init_source"
PROMOTED_FROM = "promoted_from"  # scripts/promote_candidate.py: a probe's weights shipped under another spec name


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A digest of the weights alone: names, dtypes, shapes and values, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous().reshape(-1)  # 0-d buffers (BN counters) too
        digest.update(f"{name}|{state_dict[name].dtype}|{tuple(state_dict[name].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def cycle_record(provenance: dict[str, Any]) -> dict[str, Any]:
    """One cycle's own provenance, without the history it carries (so histories stay flat)."""
    return {k: v for k, v in provenance.items() if k != EARLIER_CYCLES}


def cycles_of(provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cycle a checkpoint records, oldest first, ending with its own."""
    earlier = provenance.get(EARLIER_CYCLES) or []
    return [dict(c) for c in earlier] + [cycle_record(provenance)]


def init_lineage(
    source_path: str | Path, source: "Checkpoint", target_model: str, modules: list[str], frozen: list[str]
) -> dict[str, Any]:
    """The provenance entries a run started from ``source`` (read from ``source_path``) adds to its checkpoint."""
    lineage: dict[str, Any] = {
        INIT_SOURCE: {
            "checkpoint": str(source_path),
            "weights_sha256": weights_sha256(source.state_dict),
            "model": source.spec.name,
            "modules": list(modules),
            "frozen": list(frozen),
        }
    }
    if source.spec.name == target_model:
        lineage[EARLIER_CYCLES] = cycles_of(source.provenance)
    return lineage
