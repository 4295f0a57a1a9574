"""No model at all: the worker only reads the frames, for the decode ceiling.

`model.checkpoint: "none:HxW"` runs the whole pipeline (producers decoding,
frame rings, the worker's reads and publishing) with a model that computes
nothing and answers every frame with the same label. Why: what a host can serve
is bounded by what it can decode and move, whatever the model; the bench
measures this ceiling in the same run as every model (README.md "Performance"),
so each model's capacity reads as a share of the physical limit. PyTorch is not
even imported.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import Any

from adafocus.interface import Costs, StepResult

PREFIX = "none:"
_SIZE = re.compile(r"(\d{2,5})x(\d{2,5})")
_NOTHING = Costs(skip_signal=0.0, glance=0.0, policy=0.0, local=0.0, classifier=0.0,
                 full_step=0.0, local_full=0.0)


def parse_size(spec: str) -> tuple[int, int]:
    """"none:HxW" -> (H, W); ValueError saying what is expected."""
    match = _SIZE.fullmatch(spec[len(PREFIX):]) if spec.startswith(PREFIX) else None
    if match is None:
        raise ValueError(f"expected {PREFIX}HEIGHTxWIDTH (e.g. none:128x128), got {spec!r}")
    height, width = int(match.group(1)), int(match.group(2))
    if height % 2 or width % 2:
        raise ValueError(f"{spec!r}: frame height and width must be even")
    return height, width


class ReadOnlyModel:
    """An OnlineModel that only takes frames (adafocus.interface.OnlineModel)."""

    class_names = ["frame"]
    costs = _NOTHING
    device = "cpu"

    def __init__(self, frame_size: tuple[int, int]) -> None:
        self.frame_size = frame_size
        self._result = StepResult(class_id=0, label="frame", score=1.0, topk=[("frame", 1.0)],
                                  patch=None, skipped=True, action="skip", gflops=0.0,
                                  gflops_full=0.0)

    def step(self, frames: Any, stream_ids: Sequence[Hashable]) -> list[StepResult]:
        return [self._result] * len(stream_ids)

    def reset(self, stream_id: Hashable) -> None:
        """Nothing is kept per stream."""

    def drop(self, stream_id: Hashable) -> None:
        """Nothing is kept per stream."""
