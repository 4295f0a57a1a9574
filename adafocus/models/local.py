"""Local network f_L: the high-capacity network, run on one patch per frame."""

from __future__ import annotations

import torch
from torch import nn

from adafocus.config import AdaFocusConfig
from adafocus.models.backbones import conv_stack


class LocalNet(nn.Module):
    """Patch (N, 3, P, P) -> pooled features (N, out_features). Fully convolutional, so
    the same weights run on the whole frame for the full-frame baseline."""

    def __init__(self, config: AdaFocusConfig) -> None:
        super().__init__()
        if config.local_arch == "resnet50":
            # the paper preset only: torchvision imports torch._dynamo (~3 s, ~200 MB RSS)
            import torchvision

            self.features = torchvision.models.resnet50(weights=None)
            self.features.fc = nn.Identity()  # keeps the pooled 2048-d vector
            self.out_features = 2048
            self.stride = 32
        else:
            self.features = nn.Sequential(
                conv_stack(3, config.local_channels, config.local_strides),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(1),
            )
            self.out_features = config.local_channels[-1]
            self.stride = 2 ** sum(s == 2 for s in config.local_strides)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.features(patches)

    def feature_map(self, frames: torch.Tensor) -> torch.Tensor:
        """The map before pooling, (N, out_features, h, w); cell (i, j) is centred near
        pixel (stride * i, stride * j) of the input."""
        if isinstance(self.features, nn.Sequential):
            return self.features[0](frames)
        net = self.features
        x = net.maxpool(net.relu(net.bn1(net.conv1(frames))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))
