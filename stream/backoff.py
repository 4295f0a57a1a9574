"""Delays between retries: one policy for reconnecting cameras and restarting children.

Both the producers (reconnecting a source) and the supervisor (restarting a
crashed producer or worker) retry with exponentially growing delays, so a
failure that persists costs little, and both must stop at some point: a child
that crashes `max_tries` times within `window_s` is in a crash loop, a camera
that never answers is down. Jitter spreads the retries of many cameras that
dropped together (a switch rebooted) so they do not come back in lockstep. A
success (a frame delivered, a child that ran `stable_s`) starts over.
"""

from __future__ import annotations

import collections
import math
import random


class Backoff:
    """Exponential delays from `initial_s`, doubling up to `max_s`, each scaled by a
    random factor in 1 +- `jitter`; at most `max_tries` tries within `window_s`
    (None: no limit). Times are the caller's monotonic seconds."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        jitter: float = 0.0,
        max_tries: int | None = None,
        window_s: float = math.inf,
        stable_s: float = math.inf,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s, self.max_s, self.jitter = initial_s, max_s, jitter
        self.max_tries, self.window_s, self.stable_s = max_tries, window_s, stable_s
        self._rng = rng or random.Random()
        self._delay = initial_s
        self._recent: collections.deque[float] = collections.deque()

    def next_delay(self, now: float, ran_s: float = 0.0) -> float | None:
        """The delay before the next try, or None once `max_tries` tries happened
        within `window_s`. `ran_s`: how long the thing ran before failing; a run of
        `stable_s` or more counts as a success first."""
        if ran_s >= self.stable_s:
            self.succeeded()
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if self.max_tries is not None and len(self._recent) >= self.max_tries:
            return None
        self._recent.append(now)
        base, self._delay = self._delay, min(self.max_s, self._delay * 2)
        factor = 1.0 + self._rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0
        return min(self.max_s, base * factor)

    def succeeded(self) -> None:
        """It worked: the next failure starts again from `initial_s`."""
        self._delay = self.initial_s
        self._recent.clear()

    @property
    def tries(self) -> int:
        """Tries counted within the window (the current streak)."""
        return len(self._recent)
