"""How long the worker waits before its next tick.

Why wait at all: a tick costs a fixed part (a Python call per stage, PyTorch's
dispatch per layer, the device sync) plus a part per frame. Ticking as soon as
one frame is there makes batches of one or two frames at moderate load, and
the fixed part is then paid per frame: 3 ms of worker CPU per frame at batch 1
against about 0.3 ms at batch 64 with the tiny model on a CPU (README
"Performance"). Letting frames gather for up to `worker.tick_interval_s`
batches many streams into one tick for at most that much latency.

Why waiting must never cost a frame: a live stream's worker takes one of the
two newest frames of its ring (`read_recent`, stream.infer.worker), so a wait
long enough for a stream to write three frames drops the oldest. The wait is
therefore at most half the shortest frame interval seen in the frames' own
timestamps, and since producers do not deliver like clockwork (a decoder
thread delayed under load delivers several frames close together), a tick
after a wait that still found frames dropped halves the wait; it grows back
slowly while none are.

Why not at all when there is a backlog (a lossless stream with frames unread,
streams left out of a full batch): waiting would only add latency.
"""

from __future__ import annotations

import math

# A tick that found nothing waits at least this long: polling every ring
# continuously would burn a core on an idle pipeline.
IDLE_S = 0.005
# After a drop the wait limit halves; each tick without one gives back this
# share of the configured interval (back to the full wait in about a second).
RECOVERY = 0.02


class TickPacer:
    """`pause(...)` after each tick says how long to wait before the next."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.limit_s = interval_s  # the wait allowed now, <= interval_s
        self._waited = False

    def pause(self, frame_period_s: float, busy_s: float, processed: int, dropped: int,
              backlog: bool) -> float:
        """Seconds to wait before the next tick (0: at once).

        frame_period_s: the shortest frame interval of the live streams (inf when
        unknown); busy_s: how long the tick that just ended took; processed: the
        frames it processed; dropped: the older frames it skipped to take the
        newest (stale); backlog: frames are left that it could have taken."""
        if dropped and self._waited:
            self.limit_s /= 2
        else:
            self.limit_s = min(self.interval_s, self.limit_s + RECOVERY * self.interval_s)
        wait = 0.0 if backlog else min(self.limit_s, frame_period_s / 2) - busy_s
        self._waited = wait > 0
        if processed == 0:
            return max(wait, IDLE_S)
        return max(wait, 0.0)


def frame_gap(pts: float | None, previous: float | None, frames: int) -> float:
    """A stream's frame interval from two presentation timestamps `frames` frames
    apart (the frames skipped in between count), or inf when they do not tell it
    (no timestamps, a jump backwards or of a second or more: a reconnect, a seek)."""
    if pts is None or previous is None or frames < 1:
        return math.inf
    gap = (pts - previous) / frames
    return gap if 0.0 < gap < 1.0 else math.inf
