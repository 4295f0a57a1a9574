"""Video sources: everything the producer can read frames from, behind one
small interface.

`open_source(spec, height, width, ...)` connects (or opens, or starts
rendering) and returns a `Source` whose `frames()` yields `DecodedFrame`s that
are already (height, width, 3) uint8 RGB, the ring's size, so the producer
only copies them into a slot. Failures are `stream.ingest.uri` errors: `SourceError`
(permanent), `SourceUnavailable` (retry), `SourceTimeout` (stalled).

PyAV is imported only when a PyAV source is opened, so a synthetic-only
pipeline (and config validation) never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from stream.ingest.uri import SourceSpec


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One frame, ready for the ring. `image` may be a view that is only valid
    until the next frame is requested: copy it (the ring write does)."""

    image: np.ndarray  # (height, width, 3) uint8 RGB
    pts: float | None  # seconds, stream time
    truth: int = -1  # ground-truth class id (synthetic sources), -1 unknown


class Source(Protocol):
    description: str  # printable (masked), e.g. "h264 320x240 -> 128x128"
    end_note: str  # after frames() returned: why it ended early ("" if it did not)

    def frames(self) -> Iterator[DecodedFrame]:
        """Frames until the source ends (returns) or fails (raises). Stops early
        once the producer's stop event is set."""
        ...

    def close(self) -> None: ...


def open_source(
    spec: SourceSpec,
    height: int,
    width: int,
    *,
    open_timeout_s: float,
    stall_timeout_s: float,
    stop: threading.Event,
    on_decode_error: Callable[[], None],
    decode_threads: int = 1,
) -> Source:
    """Open `spec` producing (height, width) frames. `stall_timeout_s` bounds
    the time without a decodable frame; `on_decode_error` is called once per
    corrupt packet or frame that was skipped; `decode_threads`: the decoder's
    threads (0: libav's choice)."""
    if spec.kind == "synthetic":
        from stream.ingest.sources.synthetic import SyntheticSource

        return SyntheticSource(spec, height, width, stop)
    from stream.ingest.sources.av_source import AVSource

    return AVSource(
        spec,
        height,
        width,
        open_timeout_s=open_timeout_s,
        stall_timeout_s=stall_timeout_s,
        stop=stop,
        on_decode_error=on_decode_error,
        decode_threads=decode_threads,
    )
