"""Where a whole training run stands: a line with the share of all its steps done,
the time spent and an estimate of the time left.

Each stage has its own progress bar (adafocus.train.loop), but a run is a dozen
stages of very different lengths, and a long one is often watched from a log
(bars off, `--no-progress`), so the run logs this line when a stage starts and
every `every_s` seconds. The estimate divides the steps left by this process's
own pace (steps a resumed run finished before do not count towards the pace); it
treats every step alike, so it is rough until a few stages have run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


def duration_text(seconds: float) -> str:
    """45 s, 3 min 10 s, 2 h 05 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class RunProgress:
    """Steps done of `plan` ((stage, steps) in run order); `finished` names the stages
    a resumed run had already completed."""

    def __init__(self, plan: list[tuple[str, int]], finished: Iterable[str],
                 log: Callable[[str], None], every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._steps = dict(plan)
        self._order = [name for name, _ in plan]
        self.total = sum(self._steps.values())
        self._finished = sum(self._steps[n] for n in set(finished) if n in self._steps)
        self._log, self._every, self._clock = log, every_s, clock
        self._began = self._last = clock()
        self._ran = 0  # steps run by this process: the pace
        self._stage, self._at = "", 0

    @property
    def done(self) -> int:
        return self._finished + self._at

    def begin(self, stage: str, step: int) -> None:
        """A stage starts (or resumes) at `step`."""
        self._stage, self._at = stage, step
        position = self._order.index(stage) + 1 if stage in self._order else 0
        self._log(f"[{position}/{len(self._order)}] {stage}: {self._steps.get(stage, 0)} steps"
                  f"{f', resuming at {step}' if step else ''}; {self.line()}")
        self._last = self._clock()

    def advance(self) -> None:
        """One step of the current stage done."""
        self._at += 1
        self._ran += 1
        if self._clock() - self._last >= self._every:
            self._last = self._clock()
            self._log(f"{self._stage} step {self._at}/{self._steps.get(self._stage, 0)}; "
                      f"{self.line()}")

    def end(self, stage: str) -> None:
        self._finished += self._steps.get(stage, 0)
        self._stage, self._at = "", 0

    def line(self) -> str:
        """'run 42% (640/1520 steps), 3 min 10 s elapsed, about 4 min 22 s left'."""
        elapsed = self._clock() - self._began
        share = self.done / self.total if self.total else 1.0
        text = (f"run {100 * share:.0f}% ({self.done}/{self.total} steps), "
                f"{duration_text(elapsed)} elapsed")
        if self._ran:
            left = (self.total - self.done) * elapsed / self._ran
            text += f", about {duration_text(left)} left"
        return text


__all__ = ["RunProgress", "duration_text"]
