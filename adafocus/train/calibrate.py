"""Calibration driver: record every-frame signals of a trained model on validation
streams, then fit skip thresholds per compute budget with adafocus.skip.calibrate.

The same pass gives the model's per-frame validation accuracy (every frame run in
full), used to pick the variant that is shipped.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from adafocus.interface import Costs
from adafocus.models import AdaFocus
from adafocus.runtime import normalize_frames
from adafocus.skip import StreamSignals, calibrate, frame_thumbnails


def clip_logits(model: nn.Module, frames: torch.Tensor, patch_source: str = "policy"
                ) -> torch.Tensor:
    """Per-step logits (B, T, K) of AdaFocus (with a patch source) or a baseline."""
    if isinstance(model, AdaFocus):
        return model.forward_clip(frames, patch_source).logits
    return model.forward_clip(frames)


def glance_pooled(model: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """The pooled features whose change the online runner's glance decision reads:
    f_G's for AdaFocus, the backbone's for a baseline."""
    if isinstance(model, AdaFocus):
        return model.glance_features(frames)[1]
    return model.features(frames)


@torch.no_grad()
def record_signals(model: nn.Module, frames: np.ndarray, normalization: dict[str, list[float]],
                   device: torch.device, patch_source: str = "policy", chunk: int = 8
                   ) -> tuple[list[StreamSignals], np.ndarray]:
    """Run `model` on every frame of each sequence (uint8 (N, T, H, W, 3)), causally.

    Returns the skip signals per sequence and the per-step predictions (N, T).
    """
    model.eval()
    mean = torch.tensor(normalization["mean"], device=device)
    std = torch.tensor(normalization["std"], device=device)
    signals, predictions = [], []
    for start in range(0, len(frames), chunk):
        u8 = torch.from_numpy(frames[start:start + chunk]).to(device)
        x = normalize_frames(u8, mean, std)
        probs = clip_logits(model, x, patch_source).float().softmax(-1)
        pooled = glance_pooled(model, x.flatten(0, 1)).float().unflatten(0, x.shape[:2])
        thumbs = frame_thumbnails(u8.flatten(0, 1)).unflatten(0, x.shape[:2])
        conf, pred = probs.max(-1)
        for n in range(len(u8)):
            signals.append(StreamSignals(thumbs[n].cpu().numpy(), pooled[n].cpu().numpy(),
                                         conf[n].cpu().numpy(), pred[n].cpu().numpy()))
        predictions.append(pred.cpu().numpy())
    return signals, np.concatenate(predictions)


def calibrate_model(model: nn.Module, frames: np.ndarray, labels: np.ndarray,
                    normalization: dict[str, list[float]], device: torch.device,
                    costs: Costs, budgets: tuple[float, ...],
                    patch_source: str = "policy", max_span: int = 8) -> dict:
    """{"calibration": skip calibration (plain data), "accuracy": every-frame accuracy}."""
    signals, predictions = record_signals(model, frames, normalization, device, patch_source)
    mask = labels >= 0
    acc = float((predictions == labels)[mask].mean()) if mask.any() else 0.0
    budgets_list = sorted(budgets)
    default = 0.3 if 0.3 in budgets_list else None
    calibration = calibrate(signals, budgets_list, costs, max_span=max_span,
                            default_budget=default)
    return {"calibration": calibration, "accuracy": acc}
