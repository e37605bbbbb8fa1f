"""Common contract of every backbone, plus the SSD ``L2Norm`` layer.

A backbone maps an image batch ``(N, 3, H, W)`` with ``H`` and ``W`` multiples of 64 to a list of
exactly four feature maps at total strides 8, 16, 32 and 64 (the four levels of SSD4s / RefineDet /
DRNet), i.e. shapes ``(N, out_channels[i], H / s_i, W / s_i)``.

``default_preprocess`` says how raw pixels must be normalised for the weights a backbone carries:
``{"mean": [r, g, b], "std": [r, g, b], "color": "rgb"}`` in 0-255 pixel units, applied as
``(pixel - mean) / std`` to an RGB image.
"""

from __future__ import annotations

import torch
from torch import nn

STRIDES: tuple[int, int, int, int] = (8, 16, 32, 64)

# ImageNet statistics (torchvision convention) in 0-255 pixel units, RGB order.
IMAGENET_MEAN_255: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_255: tuple[float, float, float] = (58.395, 57.12, 57.375)


def make_preprocess(mean, std, color: str = "rgb") -> dict:
    """A fresh ``default_preprocess`` dict (lists, so instances never share mutable state)."""
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std need three values (r, g, b)")
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    return {"mean": mean, "std": std, "color": color}


def imagenet_preprocess() -> dict:
    """ImageNet mean / std in 0-255 units, RGB: the default for randomly initialised backbones."""
    return make_preprocess(IMAGENET_MEAN_255, IMAGENET_STD_255, "rgb")


class Backbone(nn.Module):
    """Base class: holds ``out_channels``, ``strides``, ``default_preprocess`` and input checks.

    Subclasses call ``super().__init__(out_channels, default_preprocess)`` and implement
    ``forward(x) -> list[Tensor]`` returning the four maps (calling ``self.check_input(x)`` first).
    """

    strides: tuple[int, int, int, int] = STRIDES
    size_divisor: int = 64

    def __init__(self, out_channels, default_preprocess: dict | None = None) -> None:
        super().__init__()
        out_channels = tuple(int(c) for c in out_channels)
        if len(out_channels) != len(STRIDES):
            raise ValueError(f"a backbone has {len(STRIDES)} outputs, got out_channels={out_channels}")
        self.out_channels: tuple[int, int, int, int] = out_channels  # type: ignore[assignment]
        self.strides = STRIDES
        self.default_preprocess: dict = (
            imagenet_preprocess() if default_preprocess is None else dict(default_preprocess)
        )

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(N, C, H, W)`` with H and W positive multiples of 64."""
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = int(x.shape[-2]), int(x.shape[-1])
        d = self.size_divisor
        if h <= 0 or w <= 0 or h % d or w % d:
            raise ValueError(f"input H, W must be multiples of {d}, got {h}x{w}")


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnable per-channel scale (SSD, ParseNet).

    ``y[:, c] = weight[c] * x[:, c] / (||x[:, :]||_2 + eps)`` where the norm runs over channels at each
    spatial position; ``weight`` starts at ``scale``.
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.channels = int(channels)
        self.scale = float(scale)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.empty(self.channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, scale={self.scale}, eps={self.eps}"
