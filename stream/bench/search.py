"""The largest number of streams a variant serves in real time: grow from 1 by a
factor (2: 1, 2, 4, ...; --quick uses 4) until a probe fails, then bisect, within
time allowances.

The two phases are separate calls so a run can first grow every variant (each
gets its coarse capacity) and spend what time is left on bisecting. Growing by
powers of the same factor also gives every variant probes at the same counts,
which the cost-growth plot and the fixed-load comparison use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Probe = Callable[[int], dict[str, Any]]


class CapacitySearch:
    """`streams`: the largest count that passed (0: not even one). `upper`: the
    smallest count that failed, None while none has. `probes`: count -> record."""

    def __init__(self, probe: Probe, *, max_streams: int, precision: float,
                 growth: int = 2) -> None:
        self._probe = probe
        self.max_streams, self.precision, self.growth = max_streams, precision, growth
        self.streams = 0
        self.upper: int | None = None
        self.probes: dict[int, dict[str, Any]] = {}

    def run(self, n: int) -> bool:
        """Probe `n` streams (once; a repeat returns the recorded verdict)."""
        if n not in self.probes:
            record = self._probe(n)
            self.probes[n] = record
            if record["ok"]:
                self.streams = max(self.streams, n)
            else:
                self.upper = n if self.upper is None else min(self.upper, n)
        return bool(self.probes[n]["ok"])

    def grow(self, deadline: float) -> None:
        """1, g, g^2, ... until a failure or max_streams. The first probe always
        runs; no later one starts after `deadline` (monotonic seconds)."""
        n = 1
        while self.run(n) and n < self.max_streams and time.monotonic() < deadline:
            n = min(self.growth * n, self.max_streams)

    def refine(self, deadline: float) -> None:
        """Go on growing if `grow` ran out of time while passing, then bisect between
        the last pass and the first failure until they are within
        max(1, precision * streams); no probe starts after `deadline`."""
        while not self.exact and time.monotonic() < deadline:
            if self.upper is None:
                self.run(min(self.growth * max(1, self.streams), self.max_streams))
            else:
                self.run((self.streams + self.upper) // 2)

    @property
    def exact(self) -> bool:
        """No count left untried at the requested precision."""
        if self.upper is None:
            return self.streams == self.max_streams
        return self.upper - self.streams <= max(1, self.precision * self.streams)
