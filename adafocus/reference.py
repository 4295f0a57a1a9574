"""The full-frame network's step time on the device in use: the reference for the
time a model actually saves.

Why measured and not derived from GFLOPs: GFLOPs saved are not time saved. Small
batches on a GPU are bound by kernel launches and host work, a CPU by memory and
per-call overheads, so a step with 5% of the GFLOPs may take 40% of the time (or
more than the full-frame network: the `paper` AdaFocus step on an H100). The
worker times f_L on the whole frame (what every result's ``gflops_full`` refers
to) at start-up, per batch size, on its own device and in its own precision, and
charges that time for every batch it runs next to the step's real time.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable

import torch

from adafocus.models.local import LocalNet
from adafocus.runtime import OnlineRunner, inference_copy

REPEATS = 3


class FullFrameClock:
    """Seconds the full-frame network takes for a batch: measured sizes exactly,
    sizes in between interpolated, larger ones extrapolated per frame."""

    def __init__(self, measured: dict[int, float]) -> None:
        if not measured:
            raise ValueError("no batch size measured")
        self.measured = dict(sorted(measured.items()))
        self._sizes = list(self.measured)

    def __call__(self, batch: int) -> float:
        sizes, times = self._sizes, self.measured
        if batch in times:
            return times[batch]
        i = bisect_left(sizes, batch)
        if i == len(sizes):
            return times[sizes[-1]] * batch / sizes[-1]
        if i == 0:
            return times[sizes[0]] * batch / sizes[0]
        low, high = sizes[i - 1], sizes[i]
        share = (batch - low) / (high - low)
        return times[low] + share * (times[high] - times[low])


@torch.inference_mode()
def measure_full_frame(runner: OnlineRunner, max_batch: int, budget_s: float = 2.0,
                       clock: Callable[[], float] = time.perf_counter) -> FullFrameClock:
    """Time f_L on whole frames at batch sizes 1, 2, 4, ... up to ``max_batch`` (the
    median of REPEATS runs after one warm-up), stopping early when ``budget_s`` is
    spent (a large network on a CPU). Untrained weights: the time does not depend
    on them."""
    network = inference_copy(LocalNet(runner.config).eval(), torch.device(runner.device),
                             runner.compute_dtype)
    height, width = runner.frame_size
    synchronize = torch.cuda.synchronize if runner.device.startswith("cuda") else _nothing
    measured: dict[int, float] = {}
    started = clock()
    batch = 1
    while True:
        frames = torch.zeros((batch, height, width, 3), dtype=torch.uint8)
        runs = []
        for _ in range(REPEATS + 1):
            begin = clock()
            with runner.autocast():
                network(runner.to_input(frames))
            synchronize()
            runs.append(clock() - begin)
        measured[batch] = sorted(runs[1:])[len(runs[1:]) // 2]
        if batch >= max_batch or clock() - started > budget_s:
            return FullFrameClock(measured)
        batch = min(2 * batch, max_batch)


def _nothing() -> None:
    """No device to wait for on the CPU."""
