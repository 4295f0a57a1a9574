"""Training sequences sampled the way the live pipeline sees a stream.

A live worker gets frames causally, at the stream's rate, and with adaptive
skipping it sees gaps (it looks at frame t, then t+3, ...). Training on exactly
that distribution is what lets the recurrent model run online: each sequence
is T frames at frame offsets ``0 = o_0 < o_1 < ...`` (gaps of 1..max_gap
frames of the source's fps, fixed per sequence or varying step by step), and a
controlled fraction of sequences straddles a label change, so the model learns
to notice one.

``SequenceDataset`` is a torch ``IterableDataset`` yielding
``(frames uint8 (T, H, W, 3), labels int64 (T,))`` (-1 = ignore). Item i of
epoch e is drawn from ``default_rng([seed, e, i])`` alone, so the items of an
epoch are the same whatever the number of DataLoader workers (worker w takes
items w, w + n, ...), and nothing is shared between workers.

Sources: ``DigitsSource`` (moving-digits scenes of one split, a fixed pool of
scene seeds 0..N-1; the split is part of a scene's key, so train scenes share
nothing with the test scenes or the synthetic camera) and ``FolderSource`` (a
``VideoFolder``; clip-labelled folders get their label changes by splicing two
clips of different labels, the cut a live camera switching scene would make).

Both also say which frame each sampled frame is (``sample_refs``: (clip or scene,
frame index) pairs) and draw single random frames (``random_frames``), for the
stages that attach a box to a frame (adafocus.train.boxes): the scene's true digit
box (``DigitsSource.truth_boxes``) or one derived from the labels. A folder within
``cache_mb`` is decoded once into memory (every frame at its own timestamp, so
sampling from it gives exactly the pictures decoding would).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.data.video_folder import IGNORE, VideoFolder, shown_index

GAP_MODES = ("fixed", "random")
_FAR = 1_000_000  # digits scenes: starts drawn from [0, _FAR) frames (~11 h at 25 fps)


class SequenceSource(Protocol):
    """Something that renders a causal sequence at integer frame offsets."""

    fps: float
    num_classes: int

    def sample(self, rng: np.random.Generator, offsets: np.ndarray,
               change: bool) -> tuple[np.ndarray, np.ndarray]:
        """((T, H, W, 3) uint8, (T,) int64) at frame offsets (0-based, increasing) from a
        random start; with `change`, a label change falls strictly inside the sequence."""
        ...


class DigitsSource:
    """Moving-digits sequences from ``scenes`` scene seeds of one split."""

    def __init__(self, split: str = "train", height: int = 128, width: int = 128,
                 fps: float = 25.0, scenes: int = 1000, cache: int = 16) -> None:
        self.split, self.height, self.width, self.fps = split, height, width, fps
        self.scenes = scenes
        self.num_classes = 10
        self._cache: OrderedDict[int, MovingDigitsScene] = OrderedDict()
        self._cache_size = cache

    def scene(self, k: int) -> MovingDigitsScene:
        """Scene k of this source's pool (a few ms to build; kept in a small LRU)."""
        scene = self._cache.get(k)
        if scene is None:
            scene = MovingDigitsScene(k, self.height, self.width, self.split, self.fps)
            self._cache[k] = scene
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(k)
        return scene

    def sample(self, rng: np.random.Generator, offsets: np.ndarray,
               change: bool) -> tuple[np.ndarray, np.ndarray]:
        return self.sample_refs(rng, offsets, change)[:2]

    def sample_refs(self, rng: np.random.Generator, offsets: np.ndarray, change: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``sample`` plus each frame's (scene, frame index), (T, 2) int64."""
        k = int(rng.integers(self.scenes))
        scene = self.scene(k)
        span = int(offsets[-1])
        start = int(rng.integers(0, _FAR))
        if change and span > 0:
            # the change at the start of a random segment lands after offset 0, at or before the end
            cut = 0
            while cut <= span:  # only the first segment of a scene can start too early
                cut = scene.segment_start(int(rng.integers(span + 1, _FAR)))
            start = cut - int(rng.integers(1, span + 1))
        return self._frames(k, start + offsets.astype(np.int64))

    def _frames(self, k: int | np.ndarray, index: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ks = np.broadcast_to(np.asarray(k, np.int64), index.shape)
        pairs = [(self.scene(int(s)), int(i)) for s, i in zip(ks, index, strict=True)]
        frames = np.stack([scene.frame(i) for scene, i in pairs])
        labels = np.array([scene.label_at(i) for scene, i in pairs], np.int64)
        return frames, labels, np.stack([ks, index], 1)

    def random_frames(self, rng: np.random.Generator, count: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``count`` single frames of random scenes and times: (N, H, W, 3), (N,), refs."""
        return self._frames(rng.integers(self.scenes, size=count),
                            rng.integers(0, _FAR, size=count))

    def truth_boxes(self, refs: np.ndarray) -> np.ndarray:
        """The scene's own digit box (x0, y0, x1, y1) px of each referenced frame, (N, 4)."""
        return np.array([self.scene(int(k)).digit_box(int(i)) for k, i in refs], np.float32)


class FolderSource:
    """Causal sequences from a ``VideoFolder`` resampled at ``fps``. With ``cache_mb``,
    a folder whose decoded frames fit in that many MB is decoded once, on first use,
    and sampled from memory; a larger one is decoded sequence by sequence."""

    def __init__(self, folder: VideoFolder, height: int, width: int, fps: float = 25.0,
                 cache_mb: float = 0.0) -> None:
        self.folder, self.height, self.width, self.fps = folder, height, width, fps
        self.num_classes = len(folder.class_names)
        frames = sum(v.duration_s * max(v.fps, 1.0) for v in folder.videos) * 1.02 + len(folder)
        self.cache_fits = frames * height * width * 3 <= cache_mb * 2**20
        self._decoded: list[tuple[np.ndarray, np.ndarray]] | None = None
        segs = [(v, s) for v, info in enumerate(folder.videos) for s in info.segments]
        self._segments = segs
        self._seg_weights = np.array([s.end_s - s.start_s for _, s in segs])
        self._seg_weights = self._seg_weights / self._seg_weights.sum()
        # label changes inside a video: where a labelled segment begins after the start
        self._cuts = [(v, s.start_s) for v, info in enumerate(folder.videos)
                      for s in info.segments if s.start_s > 0]

    def decoded(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Every video's (timestamps, frames) when the folder fits the cache, else None."""
        if self._decoded is None and self.cache_fits:
            self._decoded = [self.folder.decode_all(v, self.height, self.width)
                             for v in range(len(self.folder))]
        return self._decoded

    def frame_labels(self) -> list[np.ndarray]:
        """The label of every decoded frame of every video (``decoded()`` order)."""
        return [np.array([self.folder.label_at(v, t) for t in times], np.int64)
                for v, (times, _) in enumerate(self.decoded() or [])]

    def _read(self, video: int, start_s: float, offsets: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Frames, labels and refs (video, frame index; None without the cache)."""
        times = start_s + offsets / self.fps
        labels = np.array([self.folder.label_at(video, t) for t in times], np.int64)
        decoded = self.decoded()
        if decoded is None:
            return self.folder.frames_at(video, times, self.height, self.width), labels, None
        index = shown_index(decoded[video][0], times)
        return (decoded[video][1][index], labels,
                np.stack([np.full(len(index), video), index], 1).astype(np.int64))

    def random_frames(self, rng: np.random.Generator, count: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``count`` single labelled frames (segments drawn by duration)."""
        reads = [self._read(*self._segment_sequence(rng, np.zeros(1)), np.zeros(1))
                 for _ in range(count)]
        refs = None if reads[0][2] is None else np.concatenate([r[2] for r in reads])
        return (np.concatenate([r[0] for r in reads]), np.concatenate([r[1] for r in reads]),
                refs)

    def _segment_sequence(self, rng: np.random.Generator,
                          offsets: np.ndarray) -> tuple[int, float]:
        """(video, start) of a sequence overlapping a segment chosen by duration."""
        video, seg = self._segments[int(rng.choice(len(self._segments), p=self._seg_weights))]
        span_s = offsets[-1] / self.fps
        latest = max(0.0, self.folder.videos[video].duration_s - span_s)
        lo, hi = max(0.0, seg.start_s - span_s / 2), min(latest, seg.end_s - span_s / 2)
        return video, float(rng.uniform(lo, hi)) if hi > lo else min(lo, latest)

    def sample(self, rng: np.random.Generator, offsets: np.ndarray,
               change: bool) -> tuple[np.ndarray, np.ndarray]:
        return self.sample_refs(rng, offsets, change)[:2]

    def sample_refs(self, rng: np.random.Generator, offsets: np.ndarray, change: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``sample`` plus each frame's (video, frame index), None without the cache."""
        if change and self._cuts:
            video, cut = self._cuts[int(rng.integers(len(self._cuts)))]
            # the first sample before the cut, the last at or after it
            lead = float(rng.uniform(0.5, offsets[-1])) / self.fps
            return self._read(video, max(0.0, cut - lead), offsets)
        if change and self.num_classes > 1:
            return self._splice(rng, offsets)
        return self._read(*self._segment_sequence(rng, offsets), offsets)

    def _splice(self, rng: np.random.Generator, offsets: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A scene cut: the head of one clip followed by the continuation of a clip with
        another label (both causal, times restarting at the cut as a switched camera would)."""
        cut = int(rng.integers(1, len(offsets)))
        first = self._read(*self._segment_sequence(rng, offsets[:cut]), offsets[:cut])
        labelled = first[1][first[1] != IGNORE]
        for _ in range(16):
            tail = offsets[cut:] - offsets[cut]
            second = self._read(*self._segment_sequence(rng, tail), tail)
            other = second[1][second[1] != IGNORE]
            if not len(labelled) or not len(other) or other[0] != labelled[-1]:
                break
        refs = None if first[2] is None else np.concatenate([first[2], second[2]])
        return np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]]), refs


def sample_offsets(rng: np.random.Generator, length: int, max_gap: int,
                   gap_mode: str) -> np.ndarray:
    """Frame offsets of one sequence: gaps of one stride drawn in 1..max_gap
    ("fixed") or a fresh gap per step ("random", like adaptive skipping)."""
    if gap_mode == "fixed":
        gaps = np.full(length - 1, rng.integers(1, max_gap + 1))
    elif gap_mode == "random":
        gaps = rng.integers(1, max_gap + 1, length - 1)
    else:
        raise ValueError(f"gap_mode must be one of {GAP_MODES}, got {gap_mode!r}")
    return np.concatenate(([0], np.cumsum(gaps))).astype(np.int64)


class SequenceDataset(IterableDataset):
    """``items`` sequences per epoch (None: endless) of ``length`` frames from
    ``source``; ``change_fraction`` of them contain a label change."""

    def __init__(self, source: SequenceSource, length: int, *, max_gap: int = 1,
                 gap_mode: str = "fixed", change_fraction: float = 0.5, seed: int = 0,
                 items: int | None = None) -> None:
        if length < 2 or max_gap < 1 or not 0 <= change_fraction <= 1:
            raise ValueError(f"need length >= 2, max_gap >= 1, 0 <= change_fraction <= 1; got "
                             f"{length}, {max_gap}, {change_fraction}")
        if gap_mode not in GAP_MODES:
            raise ValueError(f"gap_mode must be one of {GAP_MODES}, got {gap_mode!r}")
        self.source, self.length, self.max_gap, self.gap_mode = source, length, max_gap, gap_mode
        self.change_fraction, self.seed, self.items = change_fraction, seed, items
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """A new epoch draws new sequences (call in the main process before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.items is None:
            raise TypeError("an endless SequenceDataset has no length")
        return self.items

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence i of the current epoch, a pure function of (seed, epoch, i)."""
        frames, labels, _ = self.item_refs(i, refs=False)
        return torch.from_numpy(frames), torch.from_numpy(labels)

    def item_refs(self, i: int, refs: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Item i as arrays, with the source's frame refs (``sample_refs``) if asked."""
        rng = np.random.default_rng([self.seed, self.epoch, i])
        offsets = sample_offsets(rng, self.length, self.max_gap, self.gap_mode)
        change = bool(rng.random() < self.change_fraction)
        if refs:
            return self.source.sample_refs(rng, offsets, change)
        return (*self.source.sample(rng, offsets, change), None)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        i = worker
        while self.items is None or i < self.items:
            yield self.item(i)
            i += workers
