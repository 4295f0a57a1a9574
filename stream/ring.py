"""A fixed-slot frame ring in POSIX shared memory: one producer writes, one
worker reads, and neither ever waits for the other.

Layout of the segment (all little-endian int64/float64, page-aligned parts):

    header page   constants | writer line (write_count, last_seq, epoch)
                            | reader line (read_index, overwritten)
    slot table    per slot one 64-byte line: lock, frame index, seq, pts,
                  t_capture, epoch, truth
    images        per slot one (H, W, 3) uint8 frame

Frames are numbered 0, 1, 2... in write order (the "frame index"; `seq` is the
producer's own sequence number and survives producer restarts). Frame i lives
in slot i % slots.

Torn reads: every slot has a seqlock. The writer makes the lock odd, writes the
pixels and metadata, then makes it even; a reader copies the slot and keeps the
copy only if the lock was even and unchanged around the copy and the slot
still holds the frame it wanted. A reader never waits on the writer: a slot
being rewritten means its old frame is gone, and the reader moves on. (This
relies on stores and loads not being reordered with each other, which holds
on x86-64 and, between separate interpreter operations, in practice elsewhere.)

Drop accounting: only the reader can tell whether a frame got out before the
writer lapped it, so the reader is the one that counts. Every written frame
ends as exactly one of: delivered, `overwritten` (lapped before the reader got
to it; counted in the header, readable by the producer for its metrics) or
stale (a real-time read, `read_latest` or `read_recent`, skipped it on purpose;
returned in `FrameMeta.skipped`).
Counting on the writer side would need a store-load fence Python cannot issue,
and would double count frames read at the instant they are overwritten.

Ownership (CPython gh-82300): below Python 3.13 every
`SharedMemory(name)` attach registers the segment with the attaching process's
resource tracker, which then unlinks it when that process exits (under a
segment other processes still use) or prints KeyError noise. So the supervisor
alone creates a ring (`FrameRing.create`, registered: its tracker cleans up if
the supervisor dies) and unlinks it; producers and the worker `attach`, which
maps /dev/shm/NAME directly and never talks to the tracker. Segment names carry
the creator's pid so `sweep_stale_segments` can remove what a dead supervisor
(and its dead tracker) left behind.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import re
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

SHM_DIR = Path("/dev/shm")
NAME_PREFIX = "afr_"
MAGIC = int.from_bytes(b"AFRING01", "little")
VERSION = 1
PAGE = 4096
SLOT_META = 8  # int64 fields per slot (one 64-byte cache line)

# header fields (int64 index); writer and reader fields on separate cache lines
_MAGIC, _VERSION, _SLOTS, _HEIGHT, _WIDTH, _META_AT, _IMAGES_AT, _STRIDE = range(8)
_WRITE_COUNT, _LAST_SEQ, _EPOCH = 8, 9, 10
_READ_INDEX, _OVERWRITTEN = 16, 17
_HEADER_FIELDS = 24
# slot fields
_LOCK, _INDEX, _SEQ, _PTS, _T_CAPTURE, _FRAME_EPOCH, _TRUTH = range(7)

_NAME_RE = re.compile(rf"{NAME_PREFIX}(\d+)_[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What came with a frame out of the ring. `skipped`: unread frames that a
    real-time read (`read_latest`, `read_recent`) passed over to give a more recent
    one (stale drops)."""

    seq: int
    pts: float | None
    t_capture: float
    epoch: int
    truth: int
    skipped: int = 0


def ring_name(namespace: str, stream_id: str, pid: int | None = None) -> str:
    """A short valid POSIX shm name, unique per (creator pid, namespace, stream):
    `afr_<pid>_<readable part>_<hash>`. The pid lets `sweep_stale_segments` find
    leftovers of dead supervisors."""
    pid = os.getpid() if pid is None else pid
    digest = hashlib.sha1(f"{namespace}\0{stream_id}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9-]", "-", stream_id)[:16]
    return f"{NAME_PREFIX}{pid}_{readable}_{digest}"


def sweep_stale_segments(shm_dir: Path = SHM_DIR) -> list[str]:
    """Unlink ring segments whose creator process no longer exists; returns their
    names. Run by a supervisor at start: a SIGKILLed supervisor takes its
    resource tracker down with it (same process group), so nothing else would."""
    removed = []
    for path in shm_dir.glob(NAME_PREFIX + "*"):
        match = _NAME_RE.fullmatch(path.name)
        if match and not pid_alive(int(match.group(1))):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path.name)
    return removed


def ring_bytes(slots: int, height: int, width: int) -> int:
    """The shared memory one ring of `slots` frames of height x width takes."""
    return _layout(slots, height, width)[3]


def shared_memory_free(shm_dir: Path = SHM_DIR) -> int:
    """Bytes still free in the shared-memory filesystem (/dev/shm: a tmpfs whose
    size Docker sets with --shm-size, 64 MiB by default)."""
    stats = os.statvfs(shm_dir)
    return stats.f_bavail * stats.f_frsize


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (someone else's counts as alive:
    not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _layout(slots: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(meta offset, images offset, per-slot image stride, total size)."""
    meta_at = PAGE
    images_at = meta_at + _round_up(slots * SLOT_META * 8, PAGE)
    stride = _round_up(height * width * 3, 64)
    return meta_at, images_at, stride, images_at + slots * stride


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class FrameRing:
    """One stream's ring. Use `create` (owner/supervisor) or `attach` (producer,
    worker); one process writes, one reads. See the module docstring."""

    def __init__(
        self, name: str, buf: mmap.mmap | memoryview, owner: shared_memory.SharedMemory | None
    ):
        self.name = name
        self._owner = owner
        self._mmap = buf
        view = memoryview(buf)
        self._hdr = view[: _HEADER_FIELDS * 8].cast("q")
        hdr = self._hdr
        if hdr[_MAGIC] != MAGIC or hdr[_VERSION] != VERSION:
            self._release()
            raise ValueError(f"shared memory segment {name!r} is not a v{VERSION} frame ring")
        self.slots, self.height, self.width = hdr[_SLOTS], hdr[_HEIGHT], hdr[_WIDTH]
        meta_at, images_at, stride = hdr[_META_AT], hdr[_IMAGES_AT], hdr[_STRIDE]
        meta_bytes = self.slots * SLOT_META * 8
        self._meta = view[meta_at : meta_at + meta_bytes].cast("q")
        self._metaf = view[meta_at : meta_at + meta_bytes].cast("d")
        self._images = np.ndarray(
            (self.slots, self.height, self.width, 3),
            dtype=np.uint8,
            buffer=buf,
            offset=images_at,
            strides=(stride, self.width * 3, 3, 1),
        )
        self._view = view
        # private cursors: each side trusts only its own, and publishes it
        self._write_count = hdr[_WRITE_COUNT]
        self._read_index = hdr[_READ_INDEX]
        self._overwritten = hdr[_OVERWRITTEN]
        self.torn_retries = 0  # reads that raced the writer and were retried or dropped

    # ------------------------------------------------------------ lifetime

    @classmethod
    def create(cls, name: str, slots: int, height: int, width: int) -> FrameRing:
        """Create and own a ring (the supervisor). Raises FileExistsError if the
        name is taken."""
        if slots < 2:
            raise ValueError(f"a ring needs at least 2 slots, got {slots}")
        if height < 1 or width < 1:
            raise ValueError(f"bad frame size {height}x{width}")
        meta_at, images_at, stride, size = _layout(slots, height, width)
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        hdr = shm.buf[: _HEADER_FIELDS * 8].cast("q")
        hdr[_SLOTS], hdr[_HEIGHT], hdr[_WIDTH] = slots, height, width
        hdr[_META_AT], hdr[_IMAGES_AT], hdr[_STRIDE] = meta_at, images_at, stride
        hdr[_LAST_SEQ] = -1
        meta = shm.buf[meta_at : meta_at + slots * SLOT_META * 8].cast("q")
        for slot in range(slots):
            meta[slot * SLOT_META + _INDEX] = -1
        meta.release()
        hdr[_VERSION] = VERSION
        hdr[_MAGIC] = MAGIC  # last: an attach before this point fails cleanly
        hdr.release()
        return cls(name, shm.buf, shm)

    @classmethod
    def attach(cls, name: str) -> FrameRing:
        """Map an existing ring without registering it with the resource tracker
        (see module docstring). Raises FileNotFoundError if there is none."""
        fd = os.open(SHM_DIR / name, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < PAGE:
                raise ValueError(f"shared memory segment {name!r} is too small for a frame ring")
            buf = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(name, buf, None)

    def close(self) -> None:
        """Unmap (every process, owner included, when done with the ring). Idempotent."""
        if "_view" not in self.__dict__:
            return
        self._release()
        if self._owner is not None:
            self._owner.close()
        elif isinstance(self._mmap, mmap.mmap):
            self._mmap.close()

    def unlink(self) -> None:
        """Remove the segment (owner only; mappings elsewhere stay valid until
        closed)."""
        if self._owner is None:
            raise RuntimeError(f"ring {self.name!r} was attached, not created: not ours to unlink")
        self._owner.unlink()

    def _release(self) -> None:
        self._images = None
        for view in ("_meta", "_metaf", "_hdr", "_view"):
            mv = self.__dict__.pop(view, None)
            if mv is not None:
                mv.release()

    def __enter__(self) -> FrameRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    # ------------------------------------------------------------ writer

    @property
    def last_seq(self) -> int:
        """The seq of the last frame written (-1 if none): a restarted producer
        continues from here so seq stays monotonic within a stream."""
        return self._hdr[_LAST_SEQ]

    @property
    def epoch(self) -> int:
        return self._hdr[_EPOCH]

    def new_epoch(self) -> int:
        """Start a new epoch (the producer, on every (re)connect): frames of the new
        connection do not continue the old scene, so the worker resets its state."""
        self._hdr[_EPOCH] += 1
        return self._hdr[_EPOCH]

    def write(
        self, image: np.ndarray, seq: int, pts: float | None, t_capture: float, truth: int = -1
    ) -> None:
        """Copy one frame into the next slot. Never blocks; an unread frame in that
        slot is lost (the reader counts it as overwritten)."""
        if image.shape != self.shape or image.dtype != np.uint8:
            raise ValueError(
                f"ring {self.name!r} holds {self.shape} uint8 frames, "
                f"got {image.shape} {image.dtype}"
            )
        hdr = self._hdr
        if seq <= hdr[_LAST_SEQ]:
            raise ValueError(f"seq must increase: {seq} after {hdr[_LAST_SEQ]}")
        w = self._write_count
        slot = w % self.slots
        base = slot * SLOT_META
        meta, metaf = self._meta, self._metaf
        lock = (meta[base + _LOCK] + 1) | 1  # odd, even if a killed writer left it odd
        meta[base + _LOCK] = lock
        self._images[slot] = image
        meta[base + _INDEX] = w
        meta[base + _SEQ] = seq
        metaf[base + _PTS] = math.nan if pts is None else pts
        metaf[base + _T_CAPTURE] = t_capture
        meta[base + _FRAME_EPOCH] = hdr[_EPOCH]
        meta[base + _TRUTH] = truth
        meta[base + _LOCK] = lock + 1
        self._write_count = w + 1
        hdr[_WRITE_COUNT] = w + 1
        hdr[_LAST_SEQ] = seq

    @property
    def written(self) -> int:
        """Frames written since the ring was created."""
        return self._hdr[_WRITE_COUNT]

    @property
    def overwritten(self) -> int:
        """Frames lapped by the writer before the reader got to them (exact; counted
        by the reader when it next reads)."""
        return self._hdr[_OVERWRITTEN]

    def unread(self) -> int:
        """Frames written and not read yet (more than `slots`: some were lapped)."""
        return max(0, self._hdr[_WRITE_COUNT] - self._hdr[_READ_INDEX])

    def fill(self) -> float:
        """Unread fraction of the ring, 0..1 (1: the reader is a full lap behind)."""
        return min(1.0, self.unread() / self.slots)

    # ------------------------------------------------------------ reader

    def read_latest(self, out: np.ndarray) -> FrameMeta | None:
        """Copy the newest unread frame into `out` (real-time mode); older unread
        frames are skipped (counted in `skipped`). None if nothing new."""
        return self._read(out, newest=1)

    def read_recent(self, out: np.ndarray, newest: int) -> FrameMeta | None:
        """Copy the oldest of the `newest` most recent unread frames into `out`:
        real time with a bounded catch-up. A source that delivered a few frames at
        once (a delayed decoder thread, a network burst) loses none of them, while
        a reader more than `newest` frames behind still skips to the recent ones
        (skipped frames counted in `skipped`). None if nothing new."""
        if newest < 1:
            raise ValueError(f"newest must be >= 1, got {newest}")
        return self._read(out, newest)

    def read_next(self, out: np.ndarray) -> FrameMeta | None:
        """Copy the oldest unread frame into `out` (lossless mode, as far as the
        writer has not lapped the reader). None if nothing new."""
        return self._read(out, newest=None)

    def peek_latest(self, out: np.ndarray) -> FrameMeta | None:
        """Copy the newest frame written into `out` without moving the reader: a
        preview watching beside the worker must not take frames from it or touch
        its drop accounting. None when nothing was written yet or the newest slot
        is being rewritten at this instant (the next peek gets the next frame)."""
        self._check_out(out)
        newest = self._hdr[_WRITE_COUNT] - 1
        return None if newest < 0 else self._copy_slot(newest, out)

    def _check_out(self, out: np.ndarray) -> None:
        if out.shape != self.shape or out.dtype != np.uint8:
            raise ValueError(f"out must be {self.shape} uint8, got {out.shape} {out.dtype}")

    def _copy_slot(self, target: int, out: np.ndarray, skipped: int = 0) -> FrameMeta | None:
        """Frame `target` copied into `out` under its slot's seqlock; None when the
        writer is rewriting (or has rewritten) that slot."""
        meta, metaf = self._meta, self._metaf
        base = target % self.slots * SLOT_META
        lock = meta[base + _LOCK]
        if lock & 1 or meta[base + _INDEX] != target:
            return None
        np.copyto(out, self._images[target % self.slots])
        seq, epoch, truth = meta[base + _SEQ], meta[base + _FRAME_EPOCH], meta[base + _TRUTH]
        pts, t_capture = metaf[base + _PTS], metaf[base + _T_CAPTURE]
        if meta[base + _LOCK] != lock:
            return None
        return FrameMeta(seq, None if math.isnan(pts) else pts, t_capture, epoch, truth, skipped)

    def _read(self, out: np.ndarray, newest: int | None) -> FrameMeta | None:
        """newest: read the oldest of the `newest` most recent unread frames; None:
        the oldest unread frame (lossless)."""
        self._check_out(out)
        hdr, slots = self._hdr, self.slots
        r = self._read_index
        while True:
            wc = hdr[_WRITE_COUNT]
            if r >= wc:
                self._publish(r)
                return None
            oldest = max(r, wc - slots)
            target = oldest if newest is None else max(oldest, wc - newest)
            frame = self._copy_slot(target, out, target - oldest)
            if frame is not None:
                self._overwritten += oldest - r
                self._publish(target + 1)
                return frame
            # The writer is rewriting (or has rewritten) the target's slot: that frame
            # is gone. Lossless mode counts it and moves past; real-time mode looks
            # again at the (new) most recent frames.
            self.torn_retries += 1
            if newest is None:
                self._overwritten += target + 1 - r
                r = target + 1

    def _publish(self, read_index: int) -> None:
        self._read_index = read_index
        self._hdr[_OVERWRITTEN] = self._overwritten
        self._hdr[_READ_INDEX] = read_index
