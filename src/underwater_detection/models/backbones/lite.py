"""A small MobileNet-class backbone for CPU real-time detection.

Layout at ``width_mult=1.0`` (channels, total stride after the layer):

* stem: 3x3 conv stride 2 -> 24 (s2)
* 1 depthwise-separable (DWS) block -> 32 (s4)
* 2 DWS blocks -> 64 (s8, output 0)
* 3 DWS blocks -> 128 (s16, output 1)
* 2 DWS blocks -> 192 (s32, output 2)
* 1 DWS block -> 256 (s64, output 3)

The first block of each stage has stride 2. A DWS block is 3x3 depthwise conv + BN + ReLU, then
1x1 pointwise conv + BN + ReLU; stride-1 blocks whose input and output channels agree add an
identity shortcut (cheap, and it helps training from scratch). Channels are scaled by ``width_mult``
and rounded to multiples of 8. Randomly initialised, so the preprocessing is ImageNet mean / std.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .base import Backbone, imagenet_preprocess

# (out_channels at width 1.0, number of blocks) per stage; every stage starts with a stride-2 block.
_STAGES: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (128, 3), (192, 2), (256, 1))
_STEM_CHANNELS = 24


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never dropping
    more than 10% below ``value`` (the MobileNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride,
                               padding=kernel_size // 2, groups=groups, bias=False)),
            ("bn", nn.BatchNorm2d(out_ch)),
            ("relu", nn.ReLU(inplace=True)),
        ]))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU; identity shortcut when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = ConvBNReLU(in_ch, in_ch, 3, stride=stride, groups=in_ch)
        self.pw = ConvBNReLU(in_ch, out_ch, 1)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return y + x if self.residual else y


class LiteBackbone(Backbone):
    """Depthwise-separable backbone; outputs at strides 8, 16, 32, 64.

    Args:
        width_mult: channel multiplier (channels rounded to multiples of 8).
    """

    def __init__(self, width_mult: float = 1.0) -> None:
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        stem = make_divisible(_STEM_CHANNELS * width_mult)
        widths = [make_divisible(c * width_mult) for c, _ in _STAGES]
        super().__init__(tuple(widths[1:]), imagenet_preprocess())
        self.width_mult = float(width_mult)

        stages: list[nn.Sequential] = []
        in_ch = stem
        for out_ch, (_, n) in zip(widths, _STAGES):
            blocks = [DepthwiseSeparable(in_ch, out_ch, stride=2)]
            blocks += [DepthwiseSeparable(out_ch, out_ch) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        # stem + stage s4 + stage s8 produce the first output.
        self.stem = ConvBNReLU(3, stem, 3, stride=2)
        self.stage4 = stages[0]
        self.stage8 = stages[1]
        self.stage16 = stages[2]
        self.stage32 = stages[3]
        self.stage64 = stages[4]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        x = self.stage4(self.stem(x))
        s8 = self.stage8(x)
        s16 = self.stage16(s8)
        s32 = self.stage32(s16)
        s64 = self.stage64(s32)
        return [s8, s16, s32, s64]
