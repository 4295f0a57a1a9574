"""Metrics for endless labelled streams (pure numpy).

A live stream has no clips and no "video prediction": the service publishes a
current label every frame. So it is judged per frame (is the published label
the true current one?), per change (how long after the truth changes does the
published label follow?) and per unit of compute (GFLOPs actually spent per
frame, skipped frames included at their cost of zero).

Conventions: ``truth`` and ``pred`` are per-frame class ids of one stream, in
frame order, equal length; ``truth == -1`` (IGNORE) marks frames without a
ground truth, which count in no metric. A *change* is a frame whose truth is a
label different from the last labelled frame before it (the stream's first
labelled frame is its start, not a change). Its *delay* is the number of frames
from the change to the first frame from which the prediction equals the new
label for ``hold`` consecutive frames (or until the segment ends, if sooner): a
one-frame flicker onto the right label is not "noticed". A change whose segment
ends before that is *missed* (delay NaN). The default hold of 5 frames is
0.2 s at 25 fps: long enough to reject flicker, short against a 2-6 s segment.
"""

from __future__ import annotations

import numpy as np

IGNORE = -1
DEFAULT_HOLD = 5


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 1:
        raise ValueError(f"pred and truth must be 1-D and equal length, got {pred.shape} "
                         f"and {truth.shape}")
    return pred, truth


def frame_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of labelled frames whose prediction is the current truth (NaN if none)."""
    pred, truth = _pair(pred, truth)
    labelled = truth != IGNORE
    return float((pred[labelled] == truth[labelled]).mean()) if labelled.any() else float("nan")


def change_points(truth: np.ndarray) -> np.ndarray:
    """Frames where the truth becomes a label different from the last labelled one."""
    truth = np.asarray(truth)
    idx = np.flatnonzero(truth != IGNORE)
    if len(idx) < 2:
        return np.empty(0, np.int64)
    vals = truth[idx]
    return idx[1:][vals[1:] != vals[:-1]].astype(np.int64)


def change_delays(pred: np.ndarray, truth: np.ndarray, hold: int = DEFAULT_HOLD) -> np.ndarray:
    """Delay in frames of every change (see module doc); NaN where missed."""
    pred, truth = _pair(pred, truth)
    if hold < 1:
        raise ValueError(f"hold must be >= 1 frame, got {hold}")
    delays = []
    for c in change_points(truth):
        label = truth[c]
        end = c + int(np.argmax(truth[c:] != label)) if (truth[c:] != label).any() else len(truth)
        t = np.arange(end - c)
        wrong = np.flatnonzero(pred[c:end] != label)
        # correct frames in a row from each t on (up to the next wrong one or the segment end)
        next_wrong = np.append(wrong, end - c)[np.searchsorted(wrong, t)]
        ok = np.flatnonzero(next_wrong - t >= np.minimum(hold, end - c - t))
        delays.append(float(ok[0]) if len(ok) else float("nan"))
    return np.array(delays, np.float64)


def summarize_delays(delays: np.ndarray, fps: float) -> dict[str, float]:
    """Mean / median / p90 delay in frames and seconds over noticed changes, and the
    fraction of changes missed."""
    delays = np.asarray(delays, np.float64)
    noticed = delays[~np.isnan(delays)]
    stats = {"changes": float(len(delays)),
             "missed_fraction": float(np.isnan(delays).mean()) if len(delays) else float("nan")}
    for name, fn in (("mean", np.mean), ("median", np.median),
                     ("p90", lambda d: np.percentile(d, 90))):
        frames = float(fn(noticed)) if len(noticed) else float("nan")
        stats[f"{name}_delay_frames"] = frames
        stats[f"{name}_delay_s"] = frames / fps
    return stats


def confusion(pred: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts of labelled frames: row = true class, column =
    published class."""
    pred, truth = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    labelled = truth != IGNORE
    flat = truth[labelled] * classes + pred[labelled]
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Accuracy on the frames of each true class (the confusion's diagonal over its
    rows); NaN for a class no frame shows."""
    matrix = np.asarray(matrix, np.float64)
    shown = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(shown > 0, np.diag(matrix) / shown, np.nan)


def majority_chance(truth: np.ndarray) -> tuple[int, float]:
    """(class, accuracy) of always answering the commonest true class: the chance
    level a model must clearly beat before any comparison of it means anything.
    (-1, NaN) when no frame is labelled."""
    labels = np.asarray(truth).ravel()
    labels = labels[labels != IGNORE]
    if not len(labels):
        return IGNORE, float("nan")
    counts = np.bincount(labels)
    return int(counts.argmax()), float(counts.max() / len(labels))


def gflops_per_frame(gflops: np.ndarray) -> float:
    """Mean compute per frame of the stream, skipped frames (0 GFLOPs) included."""
    gflops = np.asarray(gflops, np.float64)
    if gflops.ndim != 1 or not len(gflops):
        raise ValueError("gflops must be a non-empty 1-D array, one value per frame")
    return float(gflops.mean())


def evaluate_stream(pred: np.ndarray, truth: np.ndarray, fps: float,
                    gflops: np.ndarray | None = None, gflops_full: np.ndarray | None = None,
                    hold: int = DEFAULT_HOLD) -> dict[str, float]:
    """Every metric of one stream in one flat dict (ready for JSON)."""
    result = {"frames": float(len(np.asarray(truth))), "accuracy": frame_accuracy(pred, truth)}
    result.update(summarize_delays(change_delays(pred, truth, hold), fps))
    if gflops is not None:
        result["gflops_per_frame"] = gflops_per_frame(gflops)
    if gflops_full is not None:
        full = gflops_per_frame(gflops_full)
        result["gflops_full_per_frame"] = full
        if gflops is not None and full > 0:
            result["savings"] = 1.0 - result["gflops_per_frame"] / full
    return result
