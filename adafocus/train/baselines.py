"""The comparison networks of the evaluation table, shaped so the ONLINE path runs them.

- ``GlanceOnly``: f_G on the downsampled frame + a recurrent classifier head.
- ``FullFrame``: f_L (the high-capacity network) on the whole full-resolution frame
  + a recurrent classifier head: what AdaFocus saves compute against.

Both are also AdaFocus's stage 0 (the reference fine-tunes f_G and f_L as frame
classifiers first), so their f_G / f_L initialise V1 and V2.

Why AdaFocus-shaped: ``OnlineAdaFocus`` drives a model through glance_features ->
policy_step -> locate -> crop -> local_features -> classifier_step. These modules
implement the same building blocks with a trivial policy and the work moved into
the "glance" (the backbone every frame must run), so the baselines go through the
very same per-stream, frame-by-frame code, adaptive skipping included: a skip
costs nothing, a "glance" runs the backbone and keeps the label when its features
barely moved, a "full" step also advances the recurrent classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from adafocus.config import AdaFocusConfig
from adafocus.flops import component_gflops, count_gflops
from adafocus.interface import Costs
from adafocus.models import Focus, GlanceNet, LocalNet, PolicyOutput, RecurrentClassifier

BASELINE_KINDS = ("glance_only", "full_frame")


class _Baseline(nn.Module):
    """Backbone (as "glance") + GRU classifier; no policy, no patch."""

    kind: str

    def __init__(self, config: AdaFocusConfig, backbone: nn.Module, features: int) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.classifier = RecurrentClassifier(features, config.classifier_hidden,
                                              config.num_classes, config.dropout)

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- the AdaFocus building blocks OnlineAdaFocus uses -------------------------------
    def initial_state(self, batch: int, device: torch.device | str | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        device = device if device is not None else self.classifier.head.weight.device
        return (torch.zeros(batch, 0, device=device),
                torch.zeros(batch, self.classifier.hidden_size, device=device))

    def glance_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self._features(frames)
        return pooled[:, :, None, None], pooled

    def policy_step(self, glance_map: torch.Tensor, hidden: torch.Tensor) -> PolicyOutput:
        return PolicyOutput(hidden=hidden)

    def locate(self, batch: int, source: str = "policy", policy: PolicyOutput | None = None,
               sample: bool = False, generator: torch.Generator | None = None,
               device: torch.device | None = None) -> Focus:
        device = device if device is not None else self.classifier.head.weight.device
        return Focus(location=torch.zeros(batch, 2, device=device))

    def crop(self, frames: torch.Tensor, focus: Focus) -> torch.Tensor:
        return frames[:, :, :0, :0]

    def local_features(self, patches: torch.Tensor) -> torch.Tensor:
        return patches.new_zeros(patches.shape[0], 0)

    def classifier_step(self, glance_pooled: torch.Tensor, local_pooled: torch.Tensor,
                        hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(glance_pooled, hidden)

    def boxes(self, focus: Focus) -> torch.Tensor:
        """The whole frame is what these networks look at."""
        return focus.location.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(len(focus.location), 4)

    # -- training ---------------------------------------------------------------------
    def forward_clip(self, frames: torch.Tensor) -> torch.Tensor:
        """Clips (B, T, 3, H, W) normalised -> per-step logits (B, T, K), causal."""
        batch, steps = frames.shape[:2]
        feats = self._features(frames.flatten(0, 1)).unflatten(0, (batch, steps))
        _, hidden = self.initial_state(batch, frames.device)
        logits = []
        for t in range(steps):
            out, hidden = self.classifier(feats[:, t], hidden)
            logits.append(out)
        return torch.stack(logits, 1)

    def gflops(self) -> Costs:
        """Component table in adafocus.flops' layout: the backbone counts as "glance",
        one classifier step completes a full step; ``local_full`` stays f_L on the
        whole frame (the reference cost every result is compared with)."""
        cfg = self.config
        reference = component_gflops(cfg)
        with torch.device("meta"):
            meta = type(self)(cfg)
            frame = torch.zeros(1, 3, *cfg.frame_size)
            pooled = meta._features(frame)
            _, hidden = meta.initial_state(1, "meta")
            backbone = count_gflops(meta._features, frame)
            classifier = count_gflops(meta.classifier, pooled, hidden)
        return Costs(skip_signal=reference.skip_signal, glance=backbone, policy=0.0, local=0.0,
                     classifier=classifier, full_step=backbone + classifier,
                     local_full=reference.local_full)


class GlanceOnly(_Baseline):
    """f_G (at glance resolution, as in AdaFocus) + recurrent classifier."""

    kind = "glance_only"

    def __init__(self, config: AdaFocusConfig) -> None:
        glance = GlanceNet(config)
        super().__init__(config, glance, glance.out_channels)

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.backbone(frames)[1]


class FullFrame(_Baseline):
    """f_L on the whole full-resolution frame + recurrent classifier."""

    kind = "full_frame"

    def __init__(self, config: AdaFocusConfig) -> None:
        local = LocalNet(config)
        super().__init__(config, local, local.out_features)

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        """Global MAX pooling of the tiny f_L's map over the whole frame, where f_L
        itself average-pools a patch: averaging a 16x16 map would dilute one small
        digit among clutter, so the comparison would be unfair to the baseline."""
        if self.config.local_arch == "tiny_cnn":
            return self.backbone.features[0](frames).amax(dim=(2, 3))
        return self.backbone(frames)


def build_baseline(kind: str, config: AdaFocusConfig) -> _Baseline:
    if kind not in BASELINE_KINDS:
        raise ValueError(f"baseline kind must be one of {BASELINE_KINDS}, got {kind!r}")
    return GlanceOnly(config) if kind == "glance_only" else FullFrame(config)
