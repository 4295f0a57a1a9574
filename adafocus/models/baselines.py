"""The networks AdaFocus is compared with: one backbone on every whole frame, then
the same recurrent classifier f_C.

- :class:`GlanceOnly`: f_G on the downsampled frame, the cheap look alone.
- :class:`FullFrame`: f_L (the high-capacity network) on the whole full-resolution
  frame: what AdaFocus saves compute against.

They are also AdaFocus's stage 0 (the reference fine-tunes f_G and f_L as frame
classifiers first), so their backbones initialise V1 and V2.

Like :class:`~adafocus.models.AdaFocus`, a baseline is written as building blocks
that training and the online runner share, so the two cannot drift apart:

    features (per frame) -> classifier_step (recurrent)

``forward_clip`` chains them over a clip; ``adafocus.baselines.OnlineBaseline``
one frame at a time per stream.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from adafocus.config import AdaFocusConfig
from adafocus.models.classifier import RecurrentClassifier
from adafocus.models.glance import GlanceNet
from adafocus.models.local import LocalNet


class RecurrentBaseline(nn.Module):
    """A frame backbone + f_C. Subclasses say how the backbone pools a frame."""

    kind: ClassVar[str]

    def __init__(self, config: AdaFocusConfig, backbone: nn.Module, features: int) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.classifier = RecurrentClassifier(features, config.classifier_hidden,
                                              config.num_classes, config.dropout)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised full-resolution frames (N, 3, H, W) -> pooled features (N, D)."""
        raise NotImplementedError

    def initial_state(self, batch: int, device: torch.device | str | None = None
                      ) -> torch.Tensor:
        """Zero classifier hidden state (batch, hidden) for a new clip or stream."""
        device = device if device is not None else self.classifier.head.weight.device
        return torch.zeros(batch, self.classifier.hidden_size, device=device)

    def classifier_step(self, features: torch.Tensor, hidden: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of f_C: features (N, D) -> (logits (N, K), new hidden)."""
        return self.classifier(features, hidden)

    def forward_clip(self, frames: torch.Tensor) -> torch.Tensor:
        """Clips (B, T, 3, H, W) normalised -> per-step logits (B, T, K), causal: step t
        sees frames 0..t only, so they equal the online runner's frame by frame. The
        backbone runs batched over all B*T frames; only f_C loops over T."""
        batch, steps = frames.shape[:2]
        feats = self.features(frames.flatten(0, 1)).unflatten(0, (batch, steps))
        hidden = self.initial_state(batch, frames.device)
        logits = []
        for t in range(steps):
            out, hidden = self.classifier_step(feats[:, t], hidden)
            logits.append(out)
        return torch.stack(logits, 1)

    forward = forward_clip


class GlanceOnly(RecurrentBaseline):
    """f_G (at glance resolution, as in AdaFocus) + f_C."""

    kind = "glance_only"

    def __init__(self, config: AdaFocusConfig) -> None:
        glance = GlanceNet(config)
        super().__init__(config, glance, glance.out_channels)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.backbone(frames)[1]


class FullFrame(RecurrentBaseline):
    """f_L on the whole full-resolution frame + f_C."""

    kind = "full_frame"

    def __init__(self, config: AdaFocusConfig) -> None:
        local = LocalNet(config)
        super().__init__(config, local, local.out_features)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Global MAX pooling of the tiny f_L's map over the whole frame, where f_L
        itself average-pools a patch: averaging a 16x16 map would dilute one small
        digit among clutter, so the comparison would be unfair to the baseline."""
        if self.config.local_arch == "tiny_cnn":
            return self.backbone.feature_map(frames).amax(dim=(2, 3))
        return self.backbone(frames)


BASELINES: dict[str, type[RecurrentBaseline]] = {
    cls.kind: cls for cls in (GlanceOnly, FullFrame)}


def build_baseline(kind: str, config: AdaFocusConfig) -> RecurrentBaseline:
    """The baseline named ``kind`` ("glance_only" or "full_frame") for ``config``."""
    if kind not in BASELINES:
        raise ValueError(f"baseline kind must be one of {tuple(BASELINES)}, got {kind!r}")
    return BASELINES[kind](config)
