"""The subscriber side of a probe: the label rows of the measurement window, and
the trouble the streams reported during it."""

from __future__ import annotations

import math
import time

from stream.bench.media import Clip

TROUBLE = ("down", "ended", "stalled", "reconnecting")


class ProbeFailed(RuntimeError):
    """The pipeline exited or its streams never all published: no measurement."""


def stream_ids(count: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(count)]


class Watch:
    """The subscriber side of one probe: label rows of the window, trouble seen."""

    def __init__(self, sub, process, clips: list[Clip]) -> None:
        self._sub, self._process = sub, process
        self.started: set[str] = set()
        self.rows: list[tuple] = []
        self.problems: list[str] = []
        self.recording = False
        self.resize(clips)

    def resize(self, clips: list[Clip]) -> None:
        """Watch the first len(clips) streams (stream i plays clips[i]) from now on:
        a reload changed their number."""
        self._index = {sid: i for i, sid in enumerate(stream_ids(len(clips)))}
        self._clips = clips
        self.started &= set(self._index)

    def start_window(self) -> None:
        """Record labels and trouble from now on, forgetting earlier windows."""
        self.rows, self.problems, self.recording = [], [], True

    @property
    def streams(self) -> int:
        return len(self._index)

    @property
    def all_started(self) -> bool:
        return len(self.started) == self.streams

    def pump(self, until: float, stop_when_started: bool = False) -> None:
        """Receive until monotonic time `until` (or every stream has published)."""
        while (now := time.monotonic()) < until:
            if not self._process.is_alive():
                raise ProbeFailed(f"the pipeline exited early (status "
                                   f"{self._process.exitcode}; its log is on stderr)")
            if stop_when_started and self.all_started:
                return
            message = self._sub.recv(timeout=min(0.05, until - now))
            if message is not None:
                self._take(message, time.time())

    def _take(self, message, t_recv: float) -> None:
        p = message.payload
        i = self._index.get(p["stream"])
        if i is None:
            return
        if message.kind == "event":
            if self.recording and p["state"] in TROUBLE:
                self.problems.append(f"{p['stream']} {p['state']} during the window: "
                                     f"{p['detail']}")
            return
        self.started.add(p["stream"])
        if not self.recording:
            return
        pts = p["pts"]
        self.rows.append((i, p["seq"], math.nan if pts is None else pts, p["t_capture"],
                          p["t_publish"], t_recv, p["class_id"], self._clips[i].truth_at(pts),
                          p["skipped"], p["gflops"], p["gflops_full"]))


