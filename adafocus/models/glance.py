"""Glance network f_G: a cheap look at the whole (downsampled) frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adafocus.config import AdaFocusConfig
from adafocus.models.backbones import conv_stack, halved

# MobileNetV2's features halve the input five times (output stride 32).
_MOBILENET_HALVINGS = 5


class GlanceNet(nn.Module):
    """Returns the feature map (for the policy) and its average-pooled vector (for the
    classifier). Full-resolution frames are resized to ``config.glance_size`` here, so
    callers always pass the frame as the stream delivers it."""

    def __init__(self, config: AdaFocusConfig) -> None:
        super().__init__()
        if config.glance_arch == "mobilenet_v2":
            # the paper preset only: torchvision imports torch._dynamo (~3 s, ~200 MB RSS)
            import torchvision

            self.features = torchvision.models.mobilenet_v2(weights=None).features
            self.out_channels = 1280
            halvings = _MOBILENET_HALVINGS
        else:
            self.features = conv_stack(3, config.glance_channels, config.glance_strides)
            self.out_channels = config.glance_channels[-1]
            halvings = sum(s == 2 for s in config.glance_strides)
        self.input_size = tuple(config.glance_size)
        self.map_size = tuple(halved(n, halvings) for n in config.glance_size)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (N, 3, H, W) normalised -> (map (N, C, h, w), pooled (N, C))."""
        if tuple(frames.shape[-2:]) != self.input_size:
            frames = F.interpolate(frames, size=self.input_size, mode="bilinear",
                                   align_corners=False, antialias=True)
        fmap = self.features(frames)
        return fmap, fmap.mean(dim=(2, 3))
