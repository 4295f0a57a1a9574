"""Online AdaFocus: many endless streams, one batched step at a time.

``OnlineAdaFocus`` is AdaFocus on the shared online runtime (adafocus.runtime:
per-stream state, adaptive skipping, one device->host copy per step). Per frame
the glance network f_G looks at the whole downsampled frame; a full step then lets
the policy choose a patch, runs f_L on it and advances the recurrent classifier.
"""

from __future__ import annotations

import os
from typing import Any, get_args

import torch

from adafocus.checkpoint import load_checkpoint
from adafocus.interface import Costs, check_skip_mode
from adafocus.models import AdaFocus
from adafocus.models.adafocus import PatchSource
from adafocus.runtime import Hidden, OnlineRunner, resolve_device
from adafocus.skip import SkipThresholds, thresholds_for_budget


class OnlineAdaFocus(OnlineRunner):
    """Per-stream recurrent AdaFocus with optional adaptive frame skipping.

    ``skip`` thresholds (None = every frame in full) normally come from the
    checkpoint's calibration via :meth:`from_checkpoint`. ``patch_source`` "random" /
    "center" replace the policy's choice (the comparison methods of evaluation); the
    default is the policy. ``runtime``: OnlineRunner's options (amp, cuda_graphs,
    pad_batches).
    """

    def __init__(self, model: AdaFocus, class_names: list[str],
                 normalization: dict[str, list[float]], costs: Costs, *,
                 device: str | torch.device = "auto", skip: SkipThresholds | None = None,
                 top_k: int = 5, patch_source: PatchSource = "policy",
                 **runtime: Any) -> None:
        if patch_source not in get_args(PatchSource):
            raise ValueError("patch_source must be 'policy', 'random' or 'center', "
                             f"got {patch_source!r}")
        self.patch_source = patch_source
        super().__init__(model, class_names, normalization, costs, device=device, skip=skip,
                         top_k=top_k, **runtime)

    @classmethod
    def from_checkpoint(cls, spec: str | os.PathLike, device: str | torch.device = "auto",
                        skip_mode: str | None = None, budget: float | None = None,
                        top_k: int = 5, recount_costs: bool = True,
                        **runtime: Any) -> OnlineAdaFocus:
        """Load a checkpoint (path or "builtin:NAME").

        ``skip_mode`` None means "confidence" when the checkpoint has a skip
        calibration (or a ``budget`` is given) and "off" otherwise. ``budget`` picks
        the calibrated thresholds with the largest budget not above it (None: the
        checkpoint's default budget). ``recount_costs``: see load_checkpoint;
        ``runtime``: OnlineRunner's options.
        """
        resolve_device(device)  # fail on a bad device before reading the file
        check_skip_mode(skip_mode)
        checkpoint = load_checkpoint(spec, recount_costs=recount_costs)
        calibration = checkpoint.skip_calibration
        if skip_mode is None:
            skip_mode = "confidence" if (calibration is not None or budget is not None) else "off"
        skip = None
        if skip_mode == "confidence":
            if calibration is None:
                raise ValueError(f"{checkpoint.path}: no skip calibration in this checkpoint; "
                                 "use skip_mode='off' or calibrate (adafocus.skip.calibrate)")
            skip = thresholds_for_budget(calibration, budget)
        return cls(checkpoint.build_model(), checkpoint.class_names, checkpoint.normalization,
                   checkpoint.costs, device=device, skip=skip, top_k=top_k, **runtime)

    def _initial_hidden(self) -> Hidden:
        policy, classifier = self.model.initial_state(1, self._device)
        return policy[0], classifier[0]

    def _glance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f_G: (the feature map the policy reads, its pooled vector)."""
        return self.model.glance_features(x)

    def _full(self, x: torch.Tensor, glance: torch.Tensor, pooled: torch.Tensor,
              hidden: Hidden) -> tuple[torch.Tensor, torch.Tensor, Hidden]:
        """Policy, crop, f_L on the patch, classifier."""
        model = self.model
        policy_hidden, classifier_hidden = hidden
        policy = model.policy_step(glance, policy_hidden)
        focus = model.locate(len(x), self.patch_source, policy)
        local = model.local_features(model.crop(x, focus))
        logits, classifier_hidden = model.classifier_step(pooled, local, classifier_hidden)
        return logits, model.boxes(focus), (policy.hidden, classifier_hidden)
