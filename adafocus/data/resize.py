"""Decoded video frames to model frames: the one resize of training, evaluation
and the live pipeline.

A model learns from the pixels it is shown, so a user's folder (adafocus.data.
video_folder) and a live camera (stream.ingest.sources.av_source) must put a
picture into the model's frame identically: same fit (adafocus.geometry: aspect
kept, letterboxed when it differs), same scaler (swscale, area averaging: an
antialiased downscale), same colour conversion (to RGB in the decoder's scaler,
on the small YUV planes, not on a full-size RGB copy).
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from adafocus.geometry import Placement, Size, place, size_text

INTERPOLATION = "AREA"
# One thread per scale. PyAV's default (0) gives every resizer a swscale pool of one
# thread per core: per stream in the pipeline, where streams already run in parallel,
# so a 16-core host would hold 16 idle threads per camera, and a model-sized output is
# too small for slices to pay for their hand-offs.
SCALER_THREADS = 1


class FrameResizer:
    """``resizer(frame)`` -> (height, width, 3) uint8 RGB, the picture fitted into
    the model's frame. The array may be a buffer reused by the next call: copy it
    to keep it (a ring write or an array assignment does)."""

    def __init__(self, height: int, width: int) -> None:
        self.size: Size = (height, width)
        self._reformatter = VideoReformatter()
        self._canvas: np.ndarray | None = None
        self._placement: Placement | None = None
        self._source: Size | None = None

    def placement(self, source: Size) -> Placement:
        """Where a ``source`` (height, width) picture lands in the model's frame."""
        if source != self._source:
            self._source, self._placement = source, place(source, self.size)
        assert self._placement is not None
        return self._placement

    def describe(self, source: Size) -> str:
        """'192x144 -> 128x128 (letterboxed to 128x96)', for logs and events; a
        source that does not know its size yet (0x0 before its first frame) gets
        '-> 128x128'."""
        text = f"{size_text(source)} -> {size_text(self.size)}"
        if min(source) < 1:
            return text[text.index("->"):]
        p = self.placement(source)
        return text if p.fills(self.size) else f"{text} (letterboxed to {p.width}x{p.height})"

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        previous = self._placement
        p = self.placement((frame.height, frame.width))
        image = self._reformatter.reformat(frame, p.width, p.height, "rgb24",
                                           interpolation=INTERPOLATION,
                                           threads=SCALER_THREADS).to_ndarray()
        if p.fills(self.size):
            return image
        if self._canvas is None:
            self._canvas = np.zeros((*self.size, 3), np.uint8)
        elif p != previous:  # the source changed size mid-stream: clear the old bars
            self._canvas.fill(0)
        self._canvas[p.top:p.top + p.height, p.left:p.left + p.width] = image
        return self._canvas


__all__ = ["FrameResizer", "INTERPOLATION"]
