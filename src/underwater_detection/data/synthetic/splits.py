"""Fixed train / val / test splits of the synthetic benchmark, by seed range.

A sequence is fully described by its seed, so a split is just a range of seeds: disjoint ranges make the
splits disjoint by construction, and anyone can regenerate exactly the same test set from the code.
"""
from __future__ import annotations

SPLITS: dict[str, range] = {
    "train": range(0, 100_000),
    "val": range(100_000, 200_000),
    "test": range(200_000, 300_000),
}

# The benchmark's fixed test set: the first 20 seeds of the test range, 100 frames each (at 640x480, 10 fps).
TEST_SEQUENCES = 20
TEST_FRAMES = 100


def split_seeds(split: str, count: int, offset: int = 0) -> list[int]:
    """The ``count`` seeds of ``split`` starting ``offset`` seeds into its range."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    if count < 0 or offset < 0:
        raise ValueError(f"count and offset must be >= 0, got count={count}, offset={offset}")
    seeds = SPLITS[split]
    if offset + count > len(seeds):
        raise ValueError(f"split {split!r} has {len(seeds)} seeds; offset {offset} + count {count} is too many")
    return list(seeds[offset:offset + count])
