"""The test streams an evaluation runs on: the moving-digits test scenes, or a
user's labelled video folder.

Both are read the way the pipeline would see them: causally, frame after frame at
a fixed rate, fitted into the model's frame by the live path's own resize (the
folder, through adafocus.data.video_folder); their truth is per frame, -1 where
nothing is labelled. Frames are handed out in chunks so that an evaluation of
hundreds of long clips never holds them all in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.data.video_folder import VideoFolder
from adafocus.geometry import Size


class TestStreams(Protocol):
    """Streams of known truth; stream k has ``lengths[k]`` frames at ``fps``."""

    description: str
    fps: float

    @property
    def lengths(self) -> list[int]: ...

    def chunk(self, stream: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``start .. start+count-1`` of one stream: (count, H, W, 3) uint8 and
        (count,) int64 truth."""
        ...


@dataclass
class DigitsStreams:
    """``streams`` moving-digits test scenes (seeds seed..seed+streams-1, like
    synthetic://digits?seed=N), each from frame 0 for ``seconds``."""

    streams: int
    seconds: float
    fps: float
    seed: int
    frame_size: Size

    @property
    def description(self) -> str:
        return (f"{self.streams} held-out moving-digits test streams x {self.seconds:g} s at "
                f"{self.fps:g} fps")

    @cached_property
    def scenes(self) -> list[MovingDigitsScene]:
        return [MovingDigitsScene(self.seed + k, *self.frame_size, split="test", fps=self.fps)
                for k in range(self.streams)]

    @property
    def lengths(self) -> list[int]:
        return [int(round(self.seconds * self.fps))] * self.streams

    def chunk(self, stream: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        return self.scenes[stream].clip(start, count)


class FolderStreams:
    """Every clip of a labelled folder, from its start to its end, sampled at ``fps``
    (the newest frame at each time, as a camera shows it); the folder's labels must
    be among ``class_names`` (the model's)."""

    def __init__(self, root: str | os.PathLike, class_names: list[str], fps: float,
                 frame_size: Size) -> None:
        self.folder = VideoFolder(root, class_names=class_names)
        self.fps, self.frame_size = fps, frame_size
        seconds = sum(v.duration_s for v in self.folder.videos)
        self.description = (f"{len(self.folder)} clips of the folder {os.fspath(root)} "
                            f"({seconds:.0f} s) at {fps:g} fps")

    @property
    def lengths(self) -> list[int]:
        # frame k is shown from k / fps: every sample time before the clip's end
        return [max(1, int(np.ceil(v.duration_s * self.fps - 1e-6))) for v in self.folder.videos]

    def chunk(self, stream: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        return self.folder.clip(stream, start / self.fps, count, self.fps, *self.frame_size)


__all__ = ["DigitsStreams", "FolderStreams", "TestStreams"]
