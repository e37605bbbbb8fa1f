"""Training history that travels inside a checkpoint.

A shipped model is several training cycles, each starting from the previous cycle's ``model.pt``. The cycles'
records (command, recipe, seed, wall time, git commit) used to exist only in those earlier files under ``runs/``,
so a model card written on a machine without them could no longer list how the weights were made. Each new
checkpoint therefore copies its start point's history into its own provenance:

``earlier_cycles``  the provenance of every earlier cycle of the same model, oldest first (each without its own
                    ``earlier_cycles``: the list is flat, not nested);
``init_source``     what the recipe's ``init`` read: file, its SHA-256, the model it held, the modules copied and
                    those frozen. An init from another model (TRNet's frozen RG from TDRNet) ends the history there:
                    that model's cycles are its own card's business.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

EARLIER_CYCLES = "earlier_cycles"
INIT_SOURCE = "init_source"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cycle_record(provenance: dict[str, Any]) -> dict[str, Any]:
    """One cycle's own provenance, without the history it carries (so histories stay flat)."""
    return {k: v for k, v in provenance.items() if k != EARLIER_CYCLES}


def cycles_of(provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cycle a checkpoint records, oldest first, ending with its own."""
    earlier = provenance.get(EARLIER_CYCLES) or []
    return [dict(c) for c in earlier] + [cycle_record(provenance)]


def init_lineage(
    source_path: str | Path,
    source_model: str,
    source_provenance: dict[str, Any],
    target_model: str,
    modules: list[str],
    frozen: list[str],
) -> dict[str, Any]:
    """The provenance entries a run started from ``source_path`` adds to its own checkpoint."""
    lineage: dict[str, Any] = {
        INIT_SOURCE: {
            "checkpoint": str(source_path),
            "sha256": file_sha256(source_path),
            "model": source_model,
            "modules": list(modules),
            "frozen": list(frozen),
        }
    }
    if source_model == target_model:
        lineage[EARLIER_CYCLES] = cycles_of(source_provenance)
    return lineage
