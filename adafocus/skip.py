"""Adaptive frame skipping for endless streams.

Every frame takes one of three actions, decided from cheap signals measured against
the *last fully processed* frame of the stream (its reference), so slow drift adds up
and is noticed:

1. ``skip``: nothing runs, the label is carried over. Decided *before* any network
   from the pixel change: the mean absolute difference (0..255) between 16x16 block
   means of the uint8 frame and of the reference. It reads each input byte once (one
   add per byte, e.g. 0.00015 GFLOPs at 224x224 against 0.30 for MobileNetV2), so
   deciding to skip is essentially free; the block means average sensor noise away.
2. ``glance``: only f_G runs; if its pooled features moved little (relative L2
   change vs the reference) the label is carried over and the recurrent state is left
   untouched (so the classifier's state only ever sees frames it was trained to see).
3. ``full``: policy, crop, f_L and classifier run and the reference is renewed.

Both skip and glance need the last result's confidence to be at least the
``confidence`` threshold: an unsure model keeps looking. ``max_span`` bounds the
number of frames since the last full one (at most ``max_span - 1`` non-full frames in
a row), which guarantees a refresh, e.g. after a change the signals missed.

Thresholds come from :func:`calibrate`, which replays recorded validation signals
and, per target budget (mean GFLOPs per frame as a fraction of the full step),
picks the thresholds that keep the carried-over label closest to what the model
would say on every frame.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from adafocus.interface import Costs
from adafocus.metadata import CALIBRATION_VERSION, SkipCalibration
from adafocus.schema import problems

SIGNAL_GRID = 16


@dataclass(frozen=True)
class SkipThresholds:
    """A frame is skipped when pixel change < ``pixel_change``, glance-only when glance
    change < ``glance_change``; both only while confidence >= ``confidence`` and fewer
    than ``max_span`` frames have passed since the last full one."""

    pixel_change: float
    glance_change: float
    confidence: float
    max_span: int

    def __post_init__(self) -> None:
        if self.max_span < 1:
            raise ValueError(f"max_span must be >= 1, got {self.max_span}")


def frame_thumbnails(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> (N, 16*16*3) float block means (0..255), channel
    first (as adaptive average pooling of the (N, 3, H, W) frame orders them).

    Computed on every frame, so it must cost little: when the frame divides into
    16x16 blocks, the rows of each band of blocks are added as whole contiguous
    lines in small integers (vectorised, each frame byte read once), then the
    columns of each block. Exact block means, about 3x faster on a CPU than pooling
    a float copy of the frame."""
    count, height, width, channels = frames.shape
    if height % SIGNAL_GRID or width % SIGNAL_GRID:
        x = frames.permute(0, 3, 1, 2).float()
        return F.adaptive_avg_pool2d(x, SIGNAL_GRID).flatten(1)
    block_h, block_w = height // SIGNAL_GRID, width // SIGNAL_GRID
    bands = frames.view(count, SIGNAL_GRID, block_h, width * channels)
    wide = torch.int16 if block_h * 255 <= torch.iinfo(torch.int16).max else torch.int32
    lines = bands[:, :, 0].to(wide)
    for row in range(1, block_h):
        lines += bands[:, :, row]
    blocks = lines.view(count, SIGNAL_GRID, SIGNAL_GRID, block_w, channels).sum(
        3, dtype=torch.int32)
    return (blocks.permute(0, 3, 1, 2).float() / (block_h * block_w)).flatten(1)


def pixel_change(thumbs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of thumbnails, (N, D) vs (N, D) -> (N,), 0..255."""
    return (thumbs - reference).abs().mean(-1)


def glance_change(pooled: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Relative L2 change of pooled glance features, (N, D) vs (N, D) -> (N,)."""
    return (pooled - reference).norm(dim=-1) / (reference.norm(dim=-1) + 1e-6)


def may_carry(change, change_max, confidence, confidence_min, since, max_span: int):
    """Elementwise: may this frame keep the last label? Shared by the online decisions
    and the calibration replay (tensors or numpy arrays, thresholds broadcast).
    ``since`` counts frames since the last full one, this frame included."""
    return (change < change_max) & (confidence >= confidence_min) & (since < max_span)


# ---- calibration -------------------------------------------------------------------

@dataclass
class StreamSignals:
    """Signals of one validation stream with the model run in full on every frame:
    ``thumbs`` (T, 768) from frame_thumbnails, ``glance`` (T, D) pooled f_G features,
    ``confidence`` (T,) top-1 probability, ``predictions`` (T,) class ids."""

    thumbs: np.ndarray
    glance: np.ndarray
    confidence: np.ndarray
    predictions: np.ndarray


def _replay(streams: list[StreamSignals], cands: np.ndarray, costs: Costs,
            max_span: int) -> tuple[np.ndarray, np.ndarray]:
    """Replay the decision rule for C candidate threshold triples at once.

    cands (C, 3) = (pixel_change, glance_change, confidence). Returns (cost as a
    fraction of the full step, agreement of the carried label with the every-frame
    prediction), each (C,). Confidence and predictions come from the every-frame run,
    an approximation: with skipping the classifier sees fewer frames.
    """
    c_skip = costs.skip_signal
    c_glance = c_skip + costs.glance
    c_full = c_skip + costs.full_step
    cost = np.zeros(len(cands))
    agree = np.zeros(len(cands))
    frames = 0
    for s in streams:
        ref = np.zeros(len(cands), dtype=np.int64)
        cost += c_full
        agree += 1.0
        for t in range(1, len(s.predictions)):
            since = t - ref
            conf = s.confidence[ref]
            pix = np.abs(s.thumbs[ref] - s.thumbs[t]).mean(-1)
            skip = may_carry(pix, cands[:, 0], conf, cands[:, 2], since, max_span)
            g_ref = s.glance[ref]
            gchg = np.linalg.norm(g_ref - s.glance[t], axis=-1) / (
                np.linalg.norm(g_ref, axis=-1) + 1e-6)
            glance_only = ~skip & may_carry(gchg, cands[:, 1], conf, cands[:, 2], since, max_span)
            full = ~skip & ~glance_only
            cost += np.where(skip, c_skip, np.where(glance_only, c_glance, c_full))
            ref = np.where(full, t, ref)
            agree += s.predictions[ref] == s.predictions[t]
        frames += len(s.predictions)
    return cost / (frames * costs.full_step), agree / frames


def calibrate(streams: list[StreamSignals], budgets: list[float], costs: Costs,
              max_span: int = 8, default_budget: float | None = None) -> dict[str, Any]:
    """Thresholds per compute budget, as plain data for the checkpoint.

    For each budget (mean GFLOPs per frame / full-step GFLOPs, e.g. 0.3) it searches a
    grid of thresholds (quantiles of the observed frame-to-frame changes and
    confidences), keeps those whose replayed cost meets the budget and picks the one
    whose carried-over labels agree most with the every-frame predictions. When no
    candidate meets a budget the cheapest is stored with ``met: False``.
    """
    if not streams or not budgets:
        raise ValueError("calibrate needs at least one stream and one budget")
    if any(len(s.predictions) < 2 for s in streams):
        raise ValueError("every calibration stream needs at least 2 frames")
    pix_steps = np.concatenate([np.abs(np.diff(s.thumbs, axis=0)).mean(-1) for s in streams])
    g_steps = np.concatenate([
        np.linalg.norm(np.diff(s.glance, axis=0), axis=-1)
        / (np.linalg.norm(s.glance[:-1], axis=-1) + 1e-6) for s in streams])
    confs = np.concatenate([s.confidence for s in streams])
    qs = [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97]
    # A threshold just above a quantile (strict '<'), plus 0 = never carry.
    pix_c = np.unique(np.concatenate([[0.0], np.quantile(pix_steps, qs) * 1.0001 + 1e-9]))
    g_c = np.unique(np.concatenate([[0.0], np.quantile(g_steps, qs) * 1.0001 + 1e-9]))
    conf_c = np.unique(np.concatenate([[0.0], np.quantile(confs, [0.1, 0.25, 0.5, 0.75])]))
    cands = np.array(list(itertools.product(pix_c, g_c, conf_c)), dtype=np.float64)
    cost, agree = _replay(streams, cands, costs, max_span)

    entries = []
    for budget in sorted(float(b) for b in budgets):
        ok = cost <= budget
        if ok.any():
            score = np.where(ok, agree - 1e-6 * cost, -np.inf)
            best = int(np.argmax(score))
        else:
            best = int(np.argmin(cost))
        entries.append({
            "budget": budget,
            "pixel_change": float(cands[best, 0]),
            "glance_change": float(cands[best, 1]),
            "confidence": float(cands[best, 2]),
            "cost": float(cost[best]),
            "agreement": float(agree[best]),
            "met": bool(ok.any()),
        })
    default = entries[len(entries) // 2]["budget"] if default_budget is None else default_budget
    calibration = {"version": CALIBRATION_VERSION, "max_span": int(max_span),
                   "default_budget": float(default), "entries": entries}
    validate_calibration(calibration)
    return calibration


def validate_calibration(data: Any) -> None:
    """Raise ValueError naming every problem unless ``data`` is a calibration
    (adafocus.metadata.SkipCalibration)."""
    try:
        SkipCalibration.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(problems(exc, SkipCalibration, "skip_calibration"))) from None


def thresholds_for_budget(calibration: dict[str, Any], budget: float | None) -> SkipThresholds:
    """The calibrated thresholds with the largest budget <= ``budget`` (None: the
    calibration's default budget)."""
    budget = calibration["default_budget"] if budget is None else float(budget)
    fitting = [e for e in calibration["entries"] if e["budget"] <= budget + 1e-9]
    if not fitting:
        known = [e["budget"] for e in calibration["entries"]]
        raise ValueError(f"no skip calibration for budget {budget}; calibrated budgets: {known}")
    entry = max(fitting, key=lambda e: e["budget"])
    return SkipThresholds(entry["pixel_change"], entry["glance_change"], entry["confidence"],
                          calibration["max_span"])
