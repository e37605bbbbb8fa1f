"""VGG16 in the SSD / RefineDet form (reduced fc6/fc7 as convolutions, one extra stride-64 block).

Outputs (total stride: layer, channels):

* 8: ``conv4_3`` after ReLU, L2-normalised (scale 10), 512
* 16: ``conv5_3`` after ReLU, L2-normalised (scale 8), 512
* 32: ``fc7`` (after ``pool5`` 2x2/2, ``fc6`` 3x3 dilation 3, ``fc7`` 1x1), 1024
* 64: ``conv6_2`` (``conv6_1`` 1x1 then 3x3 stride 2), 512

The L2Norm only touches the emitted maps; the network itself continues from the un-normalised
activations, as in SSD / RefineDet. Weights are randomly initialised (Xavier), so the preprocessing
is ImageNet mean / std.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .base import Backbone, L2Norm, imagenet_preprocess


def _conv(in_ch: int, out_ch: int, batch_norm: bool, kernel_size: int = 3, stride: int = 1,
          padding: int = 1, dilation: int = 1) -> nn.Sequential:
    """conv -> [BN] -> ReLU (no conv bias when BN follows)."""
    layers: list[tuple[str, nn.Module]] = [
        ("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                           dilation=dilation, bias=not batch_norm)),
    ]
    if batch_norm:
        layers.append(("bn", nn.BatchNorm2d(out_ch)))
    layers.append(("relu", nn.ReLU(inplace=True)))
    return nn.Sequential(OrderedDict(layers))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)


class VGG16Backbone(Backbone):
    """VGG16 (SSD / RefineDet variant) returning maps at strides 8, 16, 32, 64.

    Args:
        batch_norm: BatchNorm after every convolution (including fc6 / fc7 / conv6_x).
    """

    def __init__(self, batch_norm: bool = True) -> None:
        super().__init__((512, 512, 1024, 512), imagenet_preprocess())
        self.batch_norm = bool(batch_norm)
        bn = self.batch_norm

        # stride 1 -> 8, output at conv4_3
        self.stage8 = nn.Sequential(OrderedDict([
            ("conv1_1", _conv(3, 64, bn)), ("conv1_2", _conv(64, 64, bn)), ("pool1", _pool()),
            ("conv2_1", _conv(64, 128, bn)), ("conv2_2", _conv(128, 128, bn)), ("pool2", _pool()),
            ("conv3_1", _conv(128, 256, bn)), ("conv3_2", _conv(256, 256, bn)),
            ("conv3_3", _conv(256, 256, bn)), ("pool3", _pool()),
            ("conv4_1", _conv(256, 512, bn)), ("conv4_2", _conv(512, 512, bn)),
            ("conv4_3", _conv(512, 512, bn)),
        ]))
        # stride 8 -> 16, output at conv5_3
        self.stage16 = nn.Sequential(OrderedDict([
            ("pool4", _pool()),
            ("conv5_1", _conv(512, 512, bn)), ("conv5_2", _conv(512, 512, bn)),
            ("conv5_3", _conv(512, 512, bn)),
        ]))
        # stride 16 -> 32, output at fc7
        self.stage32 = nn.Sequential(OrderedDict([
            ("pool5", _pool()),
            ("fc6", _conv(512, 1024, bn, kernel_size=3, padding=3, dilation=3)),
            ("fc7", _conv(1024, 1024, bn, kernel_size=1, padding=0)),
        ]))
        # stride 32 -> 64, output at conv6_2
        self.stage64 = nn.Sequential(OrderedDict([
            ("conv6_1", _conv(1024, 256, bn, kernel_size=1, padding=0)),
            ("conv6_2", _conv(256, 512, bn, kernel_size=3, stride=2, padding=1)),
        ]))
        self.conv4_3_norm = L2Norm(512, scale=10.0)
        self.conv5_3_norm = L2Norm(512, scale=8.0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.conv4_3_norm.reset_parameters()
        self.conv5_3_norm.reset_parameters()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        c4 = self.stage8(x)
        c5 = self.stage16(c4)
        fc7 = self.stage32(c5)
        c6 = self.stage64(fc7)
        return [self.conv4_3_norm(c4), self.conv5_3_norm(c5), fc7, c6]
