"""What one probe's published labels say: real time or not, latency, accuracy,
compute saved, and where the CPU went. Pure functions of arrays, so the rules are
easy to read and to test apart from any pipeline.

"Served in real time" (all three must hold over the measurement window):
- drop rate < 1%: frames of each stream that were not published, counted two
  ways, the larger wins: gaps in the published sequence numbers (stale,
  overwritten, back-pressure or lost on the wire), and labels short of the
  source rate times the window (which also sees a stream that barely publishes);
- no accumulating lag: the median capture-to-receipt latency of the last quarter
  of the window exceeds the first quarter's by no more than LAG_GROWTH_S (or half
  the first quarter's median, whichever is larger);
- the sources keep their native rate: for every stream, pts advanced at >= 99% of
  wall-clock speed between the first and last frame (a decoder starved of CPU
  falls behind without dropping or delaying anything later in the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DROP_RATE = 0.01
LAG_GROWTH_S = 0.1
MIN_SOURCE_RATE = 0.99

# One row per label message received in the window.
FIELDS = ("stream", "seq", "pts", "t_capture", "t_publish", "t_recv", "class_id", "truth",
          "skipped", "gflops", "gflops_full")


@dataclass(frozen=True)
class FrameCosts:
    """CPU seconds per frame of the steps measured in isolation (same code, same
    frame size): the ring write (producer), the ring read (worker) and encoding +
    sending one label message (worker)."""

    ring_write: float
    ring_read: float
    publish: float


def as_arrays(rows: list[tuple]) -> dict[str, np.ndarray]:
    table = np.array(rows, dtype=np.float64).reshape(-1, len(FIELDS))
    return {name: table[:, i] for i, name in enumerate(FIELDS)}


def realtime(data: dict[str, np.ndarray], streams: int, window_s: float, fps: float) -> dict:
    """The verdict and the three measurements behind it (see module docstring)."""
    reasons = []
    ids = data["stream"].astype(int)
    seen = np.unique(ids)
    if len(seen) < streams:
        reasons.append(f"{streams - len(seen)} of {streams} stream(s) published nothing")
    expected = window_s * fps
    span = delivered = short = 0
    rates = []
    for s in seen:
        mine = ids == s
        seq = data["seq"][mine]
        got = len(np.unique(seq))
        span += int(seq.max() - seq.min() + 1)
        delivered += got
        short += max(0.0, expected - 1 - got)  # one frame of slack at the window's edges
        pts, cap = data["pts"][mine], data["t_capture"][mine]
        order = np.argsort(seq)
        pts, cap = pts[order], cap[order]
        if len(pts) >= 2 and cap[-1] > cap[0] and np.isfinite(pts[[0, -1]]).all():
            rates.append((pts[-1] - pts[0]) / (cap[-1] - cap[0]))
    short += expected * (streams - len(seen))
    drop = max(1.0 - delivered / span if span else 1.0, short / (expected * streams))
    growth, first = lag_growth(data)
    rate = float(min(rates)) if rates else float("nan")
    if drop >= MAX_DROP_RATE:
        reasons.append(f"drop rate {100 * drop:.1f}% >= {100 * MAX_DROP_RATE:g}%")
    if not growth <= max(LAG_GROWTH_S, 0.5 * first):  # NaN (too few labels) fails too
        reasons.append(f"lag grew by {growth:.2f} s over the window" if growth == growth
                       else "too few labels to follow the lag")
    if rates and rate < MIN_SOURCE_RATE:
        reasons.append(f"a source ran at {100 * rate:.1f}% of its native rate (decode starved)")
    return {"ok": not reasons, "reasons": reasons, "drop_rate": drop, "lag_growth_s": growth,
            "source_rate": rate}


def lag_growth(data: dict[str, np.ndarray]) -> tuple[float, float]:
    """(last-quarter minus first-quarter median latency, first-quarter median), s."""
    order = np.argsort(data["t_recv"])
    lag = (data["t_recv"] - data["t_capture"])[order]
    quarter = len(lag) // 4
    if quarter == 0:
        return float("nan"), float("nan")
    first = float(np.median(lag[:quarter]))
    return float(np.median(lag[-quarter:])) - first, first


def latency_ms(data: dict[str, np.ndarray]) -> dict[str, float]:
    """Capture to subscriber receipt, milliseconds."""
    lag = (data["t_recv"] - data["t_capture"]) * 1e3
    if not len(lag):
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    p50, p95, p99 = np.percentile(lag, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def quality(data: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy of the published labels against the scene's timeline, compute saved
    against the full-frame network, and how often the label was carried over."""
    judged = data["truth"] >= 0
    n = int(judged.sum())
    full = float(data["gflops_full"].sum())
    return {
        "accuracy": float((data["class_id"][judged] == data["truth"][judged]).mean())
        if n else float("nan"),
        "labels_judged": n,
        "compute_saved": 1.0 - float(data["gflops"].sum()) / full if full else float("nan"),
        "gflops_per_frame": float(data["gflops"].mean()) if len(data["gflops"]) else float("nan"),
        "skip_rate": float(data["skipped"].mean()) if len(data["skipped"]) else float("nan"),
    }


def cpu_split_ms(cpu: dict[str, float], frames: int, costs: FrameCosts) -> dict[str, float]:
    """CPU milliseconds per processed frame: decode, ring, model, publish (+ total).

    Per-process CPU comes from /proc; the ring and message-encoding shares inside
    the producer and worker processes come from `costs`:
    decode = producers - ring write; model = worker - ring read - encode+send
    (it includes the worker's batching and bookkeeping); publish = encode+send +
    the supervisor (the forwarder to the PUB socket)."""
    if frames <= 0:
        return {}
    per = {role: seconds / frames for role, seconds in cpu.items()}
    split = {
        "decode": max(0.0, per["producers"] - costs.ring_write),
        "ring": costs.ring_write + costs.ring_read,
        "model": max(0.0, per["worker"] - costs.ring_read - costs.publish),
        "publish": costs.publish + per["supervisor"],
    }
    split["total"] = sum(per.values())
    return {k: v * 1e3 for k, v in split.items()}
