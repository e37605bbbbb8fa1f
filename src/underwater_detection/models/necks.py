"""Transfer connection blocks (RefineDet section 3): ARM features -> ODM features, top-down.

Each block converts one ARM level (conv-ReLU-conv), adds the 2x deconvolved output of the block above
(large-scale context, like an FPN), then ReLU-conv-ReLU "to ensure the discriminability of features".
The coarsest level has no block above it. Optional BatchNorm after every conv, for the lite models that
train from scratch with small batches.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _conv_block(cin: int, cout: int, batch_norm: bool, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class TransferConnection(nn.Module):
    def __init__(self, in_channels: int, channels: int, has_upper: bool, batch_norm: bool) -> None:
        super().__init__()
        self.lateral = nn.Sequential(
            *_conv_block(in_channels, channels, batch_norm), *_conv_block(channels, channels, batch_norm, relu=False)
        )
        self.upsample = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2) if has_upper else None
        self.fuse = nn.Sequential(nn.ReLU(inplace=True), *_conv_block(channels, channels, batch_norm))

    def forward(self, x: torch.Tensor, upper: torch.Tensor | None) -> torch.Tensor:
        y = self.lateral(x)
        if self.upsample is not None:
            if upper is None:
                raise ValueError("transfer connection block expects the output of the level above")
            y = y + self.upsample(upper)
        return self.fuse(y)


class TransferConnectionNeck(nn.Module):
    """Top-down TCB pyramid; output levels have ``channels`` channels each, same strides as the input."""

    def __init__(self, in_channels: Sequence[int], channels: int = 256, batch_norm: bool = False) -> None:
        super().__init__()
        n = len(in_channels)
        self.out_channels = tuple([channels] * n)
        self.blocks = nn.ModuleList(
            TransferConnection(c, channels, has_upper=(i < n - 1), batch_norm=batch_norm) for i, c in enumerate(in_channels)
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = [torch.empty(0)] * len(features)
        upper: torch.Tensor | None = None
        for i in range(len(features) - 1, -1, -1):
            upper = self.blocks[i](features[i], upper)
            outputs[i] = upper
        return outputs
