"""Moving-digits benchmark: an endless, seeded video of one small handwritten
digit drifting over a cluttered, slowly panning texture among distractors.

Why this scene: it isolates what AdaFocus is for. At the glance resolution
(128x128 frames seen at 32x32) the digit is a findable blob but barely legible,
so the class must come from a full-resolution patch at the right place; the
digit (the label) changes at random times, so an online model must also notice
changes. The handwriting is real (scikit-learn's bundled ``load_digits``) and
split once into disjoint train/val/test image pools, so test digits are never
seen in training.

Everything is a pure function of ``(seed, split, index)``: ``frame(index)`` is O(1)
random access (trajectories are sums of sinusoids of time, the label timeline
is generated lazily in seeded chunks), so a live producer, a training sampler
and an evaluation run can all render the same stream without shared state.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPLITS = ("train", "val", "test")
CLASS_NAMES = [str(d) for d in range(10)]
_SPLIT_SEED = 20210811  # fixed forever: changing it would leak test digits into training
_SPLIT_FRACTIONS = (0.6, 0.2)  # train, val; the rest is test

# Tags keep the independent random streams of one scene apart.
_TAG_TIMELINE, _TAG_SEGMENT, _TAG_SCENE = 1, 2, 3
_SEGMENTS_PER_CHUNK = 256
_NOISE_BANK = 16


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1797 8x8 digits as float32 in 0..1 (read once; it is a small bundled file)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


@lru_cache(maxsize=len(SPLITS))
def split_indices(split: str) -> np.ndarray:
    """Sorted indices into ``load_digits()`` of one split.

    Stratified per class with a fixed permutation, so the three splits are
    disjoint, class-balanced and identical on every machine.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    labels = _load_digits()[1]
    rng = np.random.default_rng(_SPLIT_SEED)
    chosen = []
    for c in range(len(CLASS_NAMES)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = int(round(len(idx) * _SPLIT_FRACTIONS[0]))
        n_val = int(round(len(idx) * _SPLIT_FRACTIONS[1]))
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
                  "test": (n_train + n_val, len(idx))}[split]
        chosen.append(idx[bounds[0]:bounds[1]])
    return np.sort(np.concatenate(chosen))


def digit_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 8, 8) float32 0..1 and labels (N,) int64 of one split."""
    images, labels = _load_digits()
    sel = split_indices(split)
    return images[sel], labels[sel]


def _interp_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps (lo, hi, weight of hi) for resampling n_in -> n_out samples
    (half-pixel centres, edge clamp)."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of a 2-D (or H x W x C) float array, one axis at a time.
    Gathers, not matmuls: tiny BLAS calls stall on a busy multi-core machine."""
    lo, hi, f = _interp_taps(h, img.shape[0])
    f = f.reshape(-1, *([1] * (img.ndim - 1)))
    img = img[lo] * (1 - f) + img[hi] * f
    lo, hi, f = _interp_taps(w, img.shape[1])
    f = f.reshape(1, -1, *([1] * (img.ndim - 2)))
    return img[:, lo] * (1 - f) + img[:, hi] * f


def _ink_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated-ish dark or bright colour: high contrast against the mid-tone
    background, used for the digit and the distractors alike so brightness alone
    does not single out the digit."""
    tint = rng.uniform(-20, 20, 3)
    base = rng.uniform(5, 35) if rng.random() < 0.5 else rng.uniform(220, 250)
    return np.clip(base + tint, 0, 255).astype(np.float32)


@dataclass(frozen=True)
class _Mover:
    """Smooth bounded 2-D path: each axis is a normalised sum of two sinusoids of
    time, so position and velocity are continuous and any time is O(1)."""

    freq: np.ndarray   # (2 axes, 2 terms) rad/s
    phase: np.ndarray  # (2, 2)
    amp: np.ndarray    # (2, 2), rows sum to 1

    @staticmethod
    def random(rng: np.random.Generator, speed: tuple[float, float]) -> _Mover:
        amp = rng.uniform(0.3, 1.0, (2, 2))
        return _Mover(rng.uniform(*speed, (2, 2)), rng.uniform(0, 2 * math.pi, (2, 2)),
                      amp / amp.sum(axis=1, keepdims=True))

    def at(self, t: float) -> tuple[float, float]:
        """(u, v) in [0, 1]^2 at time t seconds."""
        f, p, a = self.freq, self.phase, self.amp
        u = 0.5 + 0.5 * (a[0, 0] * math.sin(f[0, 0] * t + p[0, 0])
                         + a[0, 1] * math.sin(f[0, 1] * t + p[0, 1]))
        v = 0.5 + 0.5 * (a[1, 0] * math.sin(f[1, 0] * t + p[1, 0])
                         + a[1, 1] * math.sin(f[1, 1] * t + p[1, 1]))
        return u, v


@dataclass(frozen=True)
class _Sprite:
    """An alpha mask and an ink colour, blended over the frame at a position."""

    alpha: np.ndarray  # (h, w, 1) float32 0..1
    colour: np.ndarray  # (3,) float32


def _blend(frame: np.ndarray, sprite: _Sprite, x: int, y: int) -> None:
    """Alpha-blend `sprite` with its top-left at (x, y), clipped to the frame."""
    h, w = sprite.alpha.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    region = frame[y0:y1, x0:x1]
    a = sprite.alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    region += a * (sprite.colour - region)


class _Timeline:
    """Label segments of one stream, generated lazily in seeded chunks.

    Chunk k draws its segment lengths and class offsets (1..9, so the class
    always changes) from its own generator; a segment's class is the running sum
    of offsets mod 10, vectorised per chunk. Reaching frame n costs one numpy
    draw per ~4 hours of video at the default lengths, then a bisect.
    """

    def __init__(self, key: list[int], min_len: int, max_len: int, first_class: int) -> None:
        self._key, self._min, self._max = key, min_len, max_len
        self._chunk_ends: list[int] = []  # first frame after each chunk
        self._starts: list[np.ndarray] = []  # segment start frames per chunk
        self._classes: list[np.ndarray] = []
        self._next_class, self._next_start = first_class, 0

    def _extend(self) -> None:
        k = len(self._starts)
        rng = np.random.default_rng([*self._key, _TAG_TIMELINE, k])
        lengths = rng.integers(self._min, self._max + 1, _SEGMENTS_PER_CHUNK)
        offsets = rng.integers(1, len(CLASS_NAMES), _SEGMENTS_PER_CHUNK)
        offsets[0] = 0 if k == 0 else offsets[0]
        classes = (self._next_class + np.cumsum(offsets)) % len(CLASS_NAMES)
        starts = self._next_start + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        self._starts.append(starts)
        self._classes.append(classes)
        self._next_start = int(starts[-1] + lengths[-1])
        self._next_class = int(classes[-1])
        self._chunk_ends.append(self._next_start)

    def _chunk(self, k: int) -> None:
        while len(self._starts) <= k:
            self._extend()

    def segment(self, index: int) -> int:
        """Global number of the segment containing frame `index`."""
        if index < 0:
            raise IndexError(f"frame index must be >= 0, got {index}")
        while not self._chunk_ends or index >= self._chunk_ends[-1]:
            self._extend()
        k = bisect_right(self._chunk_ends, index)
        j = int(np.searchsorted(self._starts[k], index, side="right")) - 1
        return k * _SEGMENTS_PER_CHUNK + j

    def describe(self, seg: int) -> tuple[int, int]:
        """(class, first frame) of segment number `seg`."""
        k, j = divmod(seg, _SEGMENTS_PER_CHUNK)
        self._chunk(k)
        return int(self._classes[k][j]), int(self._starts[k][j])


class MovingDigitsScene:
    """One endless synthetic camera: ``frame(index)`` and ``label_at(index)``.

    Parameters are fixed per instance; the same ``(seed, split, height, width,
    fps)`` always renders the same pixels. ``digit_size`` bounds the side, in
    pixels, of the upscaled 8x8 digit (drawn per label segment). The default
    18-24 px balances two needs (``python -m adafocus.data.bench_scene`` checks
    the first): the handwriting holds only 8x8 of information, so a 32x32 glance
    (4.5-6 px per digit) reads it clearly worse than a full-res 48 px patch; and
    a small CNN must learn the full-res digit within a 2-core CPU budget: at
    14-20 px the tiny f_L reached 39% test patch accuracy after 300 Adam steps
    of batch 64, against 77% at 22-28 px (same clutter and distractors).
    ``segment_s`` bounds how long one label lasts, ``distractors`` how many
    non-digit things drift around.
    """

    def __init__(self, seed: int, height: int = 128, width: int = 128, split: str = "test",
                 fps: float = 25.0, *, digit_size: tuple[int, int] = (18, 24),
                 segment_s: tuple[float, float] = (2.0, 6.0), distractors: tuple[int, int] = (3, 6),
                 cache_segments: int = 8) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if height < digit_size[1] + 4 or width < digit_size[1] + 4:
            raise ValueError(
                f"frame {height}x{width} too small for digits up to {digit_size[1]} px")
        if fps <= 0 or not segment_s[0] * fps >= 1 or segment_s[1] < segment_s[0]:
            raise ValueError(
                f"bad fps {fps} / segment_s {segment_s}: a segment must last >= 1 frame")
        self.seed, self.height, self.width, self.split, self.fps = seed, height, width, split, fps
        self.class_names = list(CLASS_NAMES)
        self._ids = split_indices(split)
        self._images, labels = digit_split(split)
        self._pools = [np.flatnonzero(labels == c) for c in range(len(CLASS_NAMES))]
        self._digit_size = digit_size
        # the split is part of the key: train scene 0 and test scene 0 share nothing
        self._key = [seed, SPLITS.index(split)]
        rng = np.random.default_rng([*self._key, _TAG_SCENE])
        self._timeline = _Timeline(self._key, max(1, round(segment_s[0] * fps)),
                                   max(1, round(segment_s[1] * fps)),
                                   int(rng.integers(len(CLASS_NAMES))))
        self._pad = 12
        self._background = self._make_background(rng)
        self._pan = _Mover.random(rng, (0.05, 0.2))
        self._noise = rng.integers(-6, 7, (_NOISE_BANK, height, width, 3), dtype=np.int8)
        self._digit_path = _Mover.random(rng, (0.25, 0.8))
        n = int(rng.integers(distractors[0], distractors[1] + 1))
        self._distractors = [(self._make_distractor(rng), _Mover.random(rng, (0.2, 1.0)))
                             for _ in range(n)]
        self._segment_cache: OrderedDict[int, tuple[_Sprite, int, int]] = OrderedDict()
        self._cache_segments = cache_segments

    # -- public API --------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_at(self, index: int) -> int:
        """Class id shown at frame `index` (cheap: a bisect after lazy generation)."""
        return self._timeline.describe(self._timeline.segment(index))[0]

    def segment_start(self, index: int) -> int:
        """First frame of the label segment containing `index` (the last change before it)."""
        return self._timeline.describe(self._timeline.segment(index))[1]

    def digit_box(self, index: int) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1), end-exclusive, of the digit at frame `index`:
        ground truth for where the patch should go."""
        seg = self._timeline.segment(index)
        size = self._segment(seg)[1]
        x, y = self._place(self._digit_path, size, size, index)
        return x, y, x + size, y + size

    def digit_id(self, index: int) -> int:
        """Index into sklearn's ``load_digits()`` of the handwriting shown at
        frame `index`: provenance, and the proof that a split stays in its pool."""
        return self._segment(self._timeline.segment(index))[2]

    def frame(self, index: int) -> np.ndarray:
        """The (H, W, 3) uint8 RGB frame at `index`."""
        seg = self._timeline.segment(index)
        t = index / self.fps
        pu, pv = self._pan.at(t)
        oy, ox = round(pv * 2 * self._pad), round(pu * 2 * self._pad)
        out = self._background[oy:oy + self.height, ox:ox + self.width].copy()
        for sprite, path in self._distractors:
            h, w = sprite.alpha.shape[:2]
            x, y = self._place(path, h, w, index, loose=True)
            _blend(out, sprite, x, y)
        sprite, size, _ = self._segment(seg)
        x, y = self._place(self._digit_path, size, size, index)
        _blend(out, sprite, x, y)
        noisy = out.astype(np.int16) + self._noise[(index * 7919) % _NOISE_BANK]
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def clip(self, start: int, length: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``start, start+stride, ...`` (length of them): ((T,H,W,3) uint8, (T,) int64)."""
        if length < 0 or stride < 1:
            raise ValueError(f"need length >= 0 and stride >= 1, got {length}, {stride}")
        idx = range(start, start + length * stride, stride)
        frames = np.empty((length, self.height, self.width, 3), np.uint8)
        for i, j in enumerate(idx):
            frames[i] = self.frame(j)
        return frames, np.array([self.label_at(j) for j in idx], np.int64)

    # -- rendering ---------------------------------------------------------

    def _place(self, path: _Mover, h: int, w: int, index: int,
               loose: bool = False) -> tuple[int, int]:
        """Top-left of an h x w sprite following `path`; the digit keeps a 2 px
        margin inside the frame, distractors may leave it by up to half their size."""
        u, v = path.at(index / self.fps)
        if loose:
            return (round(-w // 2 + u * (self.width - w // 2)),
                    round(-h // 2 + v * (self.height - h // 2)))
        m = 2
        return round(m + u * (self.width - w - 2 * m)), round(m + v * (self.height - h - 2 * m))

    def _segment(self, seg: int) -> tuple[_Sprite, int, int]:
        """Digit sprite and size of one label segment (small LRU: segments change
        every few seconds, so the live case always hits)."""
        hit = self._segment_cache.get(seg)
        if hit is not None:
            self._segment_cache.move_to_end(seg)
            return hit
        cls = self._timeline.describe(seg)[0]
        rng = np.random.default_rng([*self._key, _TAG_SEGMENT, seg])
        pool = self._pools[cls]
        pick = pool[int(rng.integers(len(pool)))]
        img = self._images[pick]
        size = int(rng.integers(self._digit_size[0], self._digit_size[1] + 1))
        alpha = np.clip(_resize(img, size, size) * 1.25, 0, 1) * rng.uniform(0.85, 1.0)
        entry = (_Sprite(alpha[..., None].astype(np.float32), _ink_colour(rng)), size,
                 int(self._ids[pick]))
        self._segment_cache[seg] = entry
        if len(self._segment_cache) > self._cache_segments:
            self._segment_cache.popitem(last=False)
        return entry

    def _make_background(self, rng: np.random.Generator) -> np.ndarray:
        """Mid-tone texture larger than the frame by the pan margin: smooth colour
        noise at two scales, oriented stripes and fine grain. float32 (H+2p, W+2p, 3)."""
        h, w = self.height + 2 * self._pad, self.width + 2 * self._pad
        base = rng.uniform(95, 160, 3).astype(np.float32)
        tex = base + _resize(rng.normal(0, 28, (5, 5, 3)).astype(np.float32), h, w)
        tex += _resize(rng.normal(0, 14, (h // 8, w // 8, 3)).astype(np.float32), h, w)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        theta, period = rng.uniform(0, math.pi), rng.uniform(6, 18)
        stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
        tex += (rng.uniform(6, 16) * stripes)[..., None] * rng.uniform(0.5, 1.0, 3)
        tex += rng.normal(0, 5, (h, w, 3))
        return np.clip(tex, 70, 185).astype(np.float32)

    def _make_distractor(self, rng: np.random.Generator) -> _Sprite:
        """A digit-sized thing that is not a whole digit: a half digit, a soft
        blob or a thick stroke, in the same inks as the digit."""
        size = int(rng.integers(self._digit_size[0] - 4, self._digit_size[1] + 1))
        kind = rng.integers(3)
        if kind == 0:  # fragment: keep one half of a digit from the same split
            img = self._images[int(rng.integers(len(self._images)))].copy()
            half = rng.integers(4)
            if half == 0:
                img[:4] = 0
            elif half == 1:
                img[4:] = 0
            elif half == 2:
                img[:, :4] = 0
            else:
                img[:, 4:] = 0
            alpha = np.clip(_resize(img, size, size) * 1.25, 0, 1)
        else:
            yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2) / size
            if kind == 1:  # soft blob (ellipse)
                ry, rx = rng.uniform(0.15, 0.4, 2)
                alpha = np.exp(-((yy / ry) ** 2 + (xx / rx) ** 2) * 2.0)
            else:  # thick stroke through the centre
                theta = rng.uniform(0, math.pi)
                dist = np.abs(xx * math.sin(theta) - yy * math.cos(theta)) * size
                along = np.abs(xx * math.cos(theta) + yy * math.sin(theta))
                alpha = np.clip(rng.uniform(1.5, 3.0) - dist, 0, 1) * (along < 0.45)
        alpha = alpha * rng.uniform(0.6, 1.0)
        return _Sprite(alpha[..., None].astype(np.float32), _ink_colour(rng))
