"""Every stream's online state in preallocated rows, indexed by the stream's slot.

Why rows and not one object per stream: a batched step reads and writes the state
of many streams at once. With one object per stream that was a Python loop per
stream and a ``torch.stack`` per part every step; here a step gathers the rows it
needs with one index per tensor and writes them back with one ``index_copy``, and
the skip decision reads confidences and counters as numpy arrays. Streams come and
go: a stream takes the lowest free row on its first step and gives it back on
``release``; the table doubles when it is full (rarely: it keeps its size).

What lives where: the recurrent state and the reference glance features stay on
the model's device (they only feed the networks); the reference thumbnails, the
confidences, counters and logits live on the host, where the skip decision and the
results are made.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence

import numpy as np
import torch

Hidden = tuple[torch.Tensor, ...]
MIN_ROWS = 8


class StateTable:
    """Rows of per-stream state. ``initial`` is a new stream's recurrent state, one
    tensor per part without a batch dimension."""

    def __init__(self, initial: Hidden, num_classes: int, thumb_dim: int) -> None:
        self._initial = initial
        self._num_classes, self._thumb_dim = num_classes, thumb_dim
        self._row_of: dict[Hashable, int] = {}
        self._free: list[int] = []
        self.capacity = 0
        self.hidden: Hidden = ()
        self.glance: torch.Tensor | None = None  # (C, D) on the device, made on first store
        self.thumb = torch.empty(0, thumb_dim)  # (C, 768) host: the last full frame's
        self.logits = torch.empty(0, num_classes)  # (C, K) host, float32
        self.score = np.empty(0, np.float32)  # confidence of the last full step
        self.since = np.empty(0, np.int64)  # frames since the last full step, this one included
        self.labelled = np.empty(0, bool)  # has had a full step
        self._grow(MIN_ROWS)

    @property
    def ids(self) -> list[Hashable]:
        """Ids of the streams holding a row, in the order they joined."""
        return list(self._row_of)

    def row(self, stream_id: Hashable) -> int | None:
        return self._row_of.get(stream_id)

    def rows(self, stream_ids: Sequence[Hashable]) -> np.ndarray:
        """The rows of these streams; a stream seen for the first time gets a fresh one."""
        out = np.empty(len(stream_ids), np.int64)
        row_of = self._row_of
        for i, stream_id in enumerate(stream_ids):
            row = row_of.get(stream_id)
            out[i] = self._take(stream_id) if row is None else row
        return out

    def release(self, stream_id: Hashable) -> int | None:
        """Give the stream's row back; returns it (None for an unknown stream)."""
        row = self._row_of.pop(stream_id, None)
        if row is not None:
            heapq.heappush(self._free, row)
        return row

    def store_glance(self, rows: torch.Tensor, pooled: torch.Tensor) -> None:
        if self.glance is None:
            self.glance = pooled.new_zeros(self.capacity, pooled.shape[1])
        self.glance.index_copy_(0, rows, pooled)

    def glance_refs(self, rows: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """The reference glance features of these rows (``pooled`` itself before any
        store: only labelled rows, which have one, may carry a label over)."""
        return pooled if self.glance is None else self.glance.index_select(0, rows)

    def _take(self, stream_id: Hashable) -> int:
        if not self._free:
            self._grow(2 * self.capacity)
        row = heapq.heappop(self._free)  # the lowest: the table stays dense
        self._row_of[stream_id] = row
        for part, first in zip(self.hidden, self._initial, strict=True):
            part[row] = first
        self.since[row] = 0
        self.labelled[row] = False
        return row

    def _grow(self, capacity: int) -> None:
        old = self.capacity
        if old:
            self.hidden = tuple(torch.cat([h, h.new_zeros(capacity - old, *h.shape[1:])])
                                for h in self.hidden)
        else:
            self.hidden = tuple(h.new_zeros(capacity, *h.shape) for h in self._initial)
        if self.glance is not None:
            self.glance = torch.cat([self.glance,
                                     self.glance.new_zeros(capacity - old, self.glance.shape[1])])
        self.thumb = torch.cat([self.thumb, torch.zeros(capacity - old, self._thumb_dim)])
        self.logits = torch.cat([self.logits, torch.zeros(capacity - old, self._num_classes)])
        self.score = np.concatenate([self.score, np.zeros(capacity - old, np.float32)])
        self.since = np.concatenate([self.since, np.zeros(capacity - old, np.int64)])
        self.labelled = np.concatenate([self.labelled, np.zeros(capacity - old, bool)])
        self._free.extend(range(old, capacity))
        heapq.heapify(self._free)
        self.capacity = capacity
