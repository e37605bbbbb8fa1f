"""Anchor (prior box) generation for the 4-level single-shot detectors.

The layout follows RefineDet / DRNet: one feature level per total stride (8, 16, 32, 64), one anchor scale
per level equal to ``scale_factor`` times the stride (32, 64, 128, 256 px with the default factor 4), and
aspect ratios (1, 2, 1/2), giving 3 anchors per cell. That keeps the anchor *tiling density* equal on every
level (RefineDet section 4), so small and large objects see the same number of anchors per area.

Layout contract (shared with every head in ``models``): anchors are enumerated level by level, then cell by
cell in row-major order (y, then x), then by aspect ratio in the configured order. A head whose conv output is
``(B, A*4, H, W)`` therefore flattens with ``permute(0, 2, 3, 1).reshape(B, -1, 4)`` into the same order.

Anchors are ``(cx, cy, w, h)`` normalised by the input width (x, w) and height (y, h), so non-square inputs
give anchors that are square in *pixels*.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

DEFAULT_STRIDES: tuple[int, ...] = (8, 16, 32, 64)
DEFAULT_ASPECT_RATIOS: tuple[float, ...] = (1.0, 2.0, 0.5)


@dataclass(frozen=True)
class PriorConfig:
    """Anchor settings; travels inside the model config (and so inside every checkpoint).

    ``clip``: clamp each of ``(cx, cy, w, h)`` to [0, 1], as ssd.pytorch / RefineDet.PyTorch do. That only
    ever shrinks the oversized anchors (e.g. the 256 px, ratio-2 anchor at 320 px input gets w = 1) and keeps
    every anchor centred on its cell, which the box coding assumes.
    """

    strides: tuple[int, ...] = DEFAULT_STRIDES
    scale_factor: float = 4.0
    aspect_ratios: tuple[float, ...] = DEFAULT_ASPECT_RATIOS
    clip: bool = True
    sizes: tuple[float, ...] | None = field(default=None)  # explicit per-level sizes (px) override the factor

    def __post_init__(self) -> None:
        if not self.strides or any(s <= 0 for s in self.strides):
            raise ValueError(f"anchor strides must be positive integers, got {self.strides}")
        if not self.aspect_ratios or any(r <= 0 for r in self.aspect_ratios):
            raise ValueError(f"anchor aspect ratios must be positive, got {self.aspect_ratios}")
        if self.sizes is not None and len(self.sizes) != len(self.strides):
            raise ValueError(f"anchor sizes {self.sizes} must give one size per stride {self.strides}")

    @property
    def anchors_per_cell(self) -> int:
        return len(self.aspect_ratios)

    def level_sizes(self) -> tuple[float, ...]:
        if self.sizes is not None:
            return tuple(float(s) for s in self.sizes)
        return tuple(self.scale_factor * s for s in self.strides)

    @classmethod
    def from_dict(cls, cfg: dict | None) -> "PriorConfig":
        cfg = dict(cfg or {})
        known = {"strides", "scale_factor", "aspect_ratios", "clip", "sizes"}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown anchor config keys {sorted(unknown)}; known: {sorted(known)}")
        for key in ("strides", "aspect_ratios", "sizes"):
            if cfg.get(key) is not None:
                cfg[key] = tuple(cfg[key])
        return cls(**cfg)

    def to_dict(self) -> dict:
        return {
            "strides": list(self.strides),
            "scale_factor": self.scale_factor,
            "aspect_ratios": list(self.aspect_ratios),
            "clip": self.clip,
            "sizes": None if self.sizes is None else list(self.sizes),
        }


def check_input_size(height: int, width: int, config: PriorConfig = PriorConfig()) -> None:
    """Every level must tile the image exactly, otherwise head outputs and anchors disagree in count."""
    step = max(config.strides)
    if height <= 0 or width <= 0 or height % step or width % step:
        raise ValueError(
            f"input size {height}x{width} (HxW) is not supported: both sides must be positive multiples of "
            f"{step} (the largest anchor stride), e.g. 320x320 or 512x384"
        )


def feature_map_sizes(height: int, width: int, config: PriorConfig = PriorConfig()) -> list[tuple[int, int]]:
    check_input_size(height, width, config)
    return [(height // s, width // s) for s in config.strides]


def num_priors(height: int, width: int, config: PriorConfig = PriorConfig()) -> int:
    return sum(h * w for h, w in feature_map_sizes(height, width, config)) * config.anchors_per_cell


def generate_priors(
    height: int,
    width: int,
    config: PriorConfig = PriorConfig(),
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Return ``(N, 4)`` anchors ``(cx, cy, w, h)`` normalised to the input size (layout: module docstring)."""
    levels = []
    ratios = torch.tensor(config.aspect_ratios, dtype=torch.float64)
    for (fh, fw), stride, size in zip(feature_map_sizes(height, width, config), config.strides, config.level_sizes()):
        ys, xs = torch.meshgrid(torch.arange(fh, dtype=torch.float64), torch.arange(fw, dtype=torch.float64), indexing="ij")
        cx = ((xs + 0.5) * stride / width).reshape(-1, 1).expand(-1, len(ratios))
        cy = ((ys + 0.5) * stride / height).reshape(-1, 1).expand(-1, len(ratios))
        w = (size * ratios.sqrt() / width).expand_as(cx)
        h = (size / ratios.sqrt() / height).expand_as(cy)
        levels.append(torch.stack([cx, cy, w, h], dim=-1).reshape(-1, 4))
    priors = torch.cat(levels, dim=0)
    if config.clip:
        priors = priors.clamp_(0.0, 1.0)
    return priors.to(device=device, dtype=dtype)


def priors_per_level(height: int, width: int, config: PriorConfig = PriorConfig()) -> list[int]:
    return [h * w * config.anchors_per_cell for h, w in feature_map_sizes(height, width, config)]

