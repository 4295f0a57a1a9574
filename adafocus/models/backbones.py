"""Backbone builders shared by the glance and local networks.

The `tiny` preset uses the same plain conv stack for both (conv3x3-BN-ReLU layers);
the `paper` preset uses torchvision's MobileNetV2 and ResNet-50 with weights=None
(nothing is ever downloaded: trained weights come from our own checkpoints).
"""

from __future__ import annotations

import math

from torch import nn


def conv_stack(in_channels: int, channels: tuple[int, ...],
               strides: tuple[int, ...]) -> nn.Sequential:
    """conv3x3(padding 1)-BN-ReLU per entry; stride 2 halves the size (rounding up)."""
    layers: list[nn.Module] = []
    for out_channels, stride in zip(channels, strides, strict=True):
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


def halved(size: int, times: int) -> int:
    """Output size after `times` stride-2 convs with kernel 3 and padding 1 (ceil(n/2) each)."""
    for _ in range(times):
        size = math.ceil(size / 2)
    return size
