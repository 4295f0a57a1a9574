"""What the stream API and the live view know of each stream's results.

The forwarder hands every message it publishes to a `ResultsTap` (in its own
thread). For each stream the tap keeps the last label (label, score, the last
patch looked at), labels per second and the compute spent against the
full-frame network since the stream was added. That is a msgpack decode and a
few additions per label; nothing is queued and nothing crosses threads.

Watchers (the live page's event streams) subscribe from the HTTP server's event
loop. While there are any, the tap notes which streams changed and wakes the
loop at most `FLUSH_HZ` times a second, whatever the label rate; each watcher
then gets the set of changed streams (bounded by the number of streams, so a
slow watcher costs memory for nothing but that set). Without watchers the tap
never touches the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import msgpack

from stream.wire.messages import EVENT_PREFIX, LABEL_PREFIX

FLUSH_HZ = 10
RATE_WINDOW_S = 1.0  # labels/s is measured over windows of at least this
QUIET_S = 3.0  # no label for this long: 0 labels/s
_LABEL = LABEL_PREFIX.encode()
_EVENT = EVENT_PREFIX.encode()


@dataclass
class Tally:
    """One stream's results so far (a copy when read)."""

    label: str | None = None
    score: float | None = None
    patch: list[float] | None = None  # the last patch looked at (labels carried over have none)
    truth: str | None = None
    t_publish: float | None = None
    labels: int = 0
    gflops: float = 0.0
    gflops_full: float = 0.0
    rate: float = 0.0
    last_at: float = 0.0
    mark_at: float = 0.0
    mark_labels: int = 0

    def take(self, payload: dict, now: float) -> None:
        self.label, self.score = payload["label"], payload["score"]
        self.patch = payload["patch"] or self.patch
        self.truth = payload.get("truth")
        self.t_publish = payload["t_publish"]
        self.gflops += payload["gflops"]
        self.gflops_full += payload["gflops_full"]
        self.labels += 1
        self.last_at = now
        if self.labels == 1:
            self.mark_at, self.mark_labels = now, 1
        elif now - self.mark_at >= RATE_WINDOW_S:
            self.rate = (self.labels - self.mark_labels) / (now - self.mark_at)
            self.mark_at, self.mark_labels = now, self.labels

    def fps(self, now: float) -> float:
        return 0.0 if now - self.last_at > QUIET_S else self.rate

    def compute_saved(self) -> float | None:
        return None if self.gflops_full <= 0 else 1.0 - self.gflops / self.gflops_full


class Watch:
    """One watcher's view of the tap: which streams changed since it last looked."""

    def __init__(self) -> None:
        self._changed: set[str] = set()
        self._wake = asyncio.Event()

    def _note(self, streams: set[str]) -> None:
        self._changed |= streams
        self._wake.set()

    async def changed(self, timeout_s: float) -> set[str]:
        """The streams that changed (empty after `timeout_s` without news)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except asyncio.TimeoutError:
            return set()
        self._wake.clear()
        changed, self._changed = self._changed, set()
        return changed


class ResultsTap:
    """Called with every message the forwarder publishes; read by the API."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tallies: dict[str, Tally] = {}
        self._watches: tuple[Watch, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: set[str] = set()
        self._flush_due = False

    def __call__(self, frames: list[bytes]) -> None:
        topic = frames[0]
        if topic.startswith(_LABEL):
            stream = topic[len(_LABEL):].decode()
            try:
                payload = msgpack.unpackb(frames[1])
                with self._lock:
                    tally = self._tallies.get(stream)
                    if tally is None:
                        tally = self._tallies[stream] = Tally()
                    tally.take(payload, self._clock())
            except (ValueError, KeyError, TypeError):
                return  # not a v1 label: the public feed's subscribers judge it themselves
        elif topic.startswith(_EVENT):
            stream = topic[len(_EVENT):].decode()
        else:
            return
        if self._watches:
            self._changed(stream)

    def _changed(self, stream: str) -> None:
        with self._lock:
            self._dirty.add(stream)
            due, self._flush_due = self._flush_due, True
            loop = self._loop
        if not due and loop is not None:
            with contextlib.suppress(RuntimeError):  # a stopped HTTP server: nobody to tell
                loop.call_soon_threadsafe(loop.call_later, 1.0 / FLUSH_HZ, self._flush)

    def _flush(self) -> None:
        with self._lock:
            dirty, self._dirty, self._flush_due = self._dirty, set(), False
        for watch in self._watches:
            watch._note(dirty)

    # ------------------------------------------------------------ readers

    def tally(self, stream: str) -> Tally | None:
        with self._lock:
            found = self._tallies.get(stream)
            return None if found is None else replace(found)

    def keep_only(self, streams: set[str]) -> None:
        """Forget the streams that are no longer configured."""
        with self._lock:
            for gone in set(self._tallies) - streams:
                del self._tallies[gone]

    def now(self) -> float:
        return self._clock()

    def watch(self) -> Watch:
        """A new watcher (call in the HTTP server's event loop)."""
        watch = Watch()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._watches = (*self._watches, watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        with self._lock:
            self._watches = tuple(w for w in self._watches if w is not watch)
