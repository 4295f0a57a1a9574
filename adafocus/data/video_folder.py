"""Users' own labelled videos: a folder of video files plus ``labels.csv``.

Two CSV layouts, told apart by the header:

- ``file,label``: one label for the whole clip;
- ``file,start_s,end_s,label``: labelled time segments ``[start_s, end_s)``
  (seconds from the start of the video), several per file, never overlapping.

Everything is checked when the folder is opened, with errors that name the CSV
line and the problem (missing file, unknown label, overlapping segments, a file
PyAV cannot decode), so a bad dataset fails in seconds, not hours into
training. Frames are decoded with PyAV and sampled CAUSALLY: the frame returned
for time t is the newest frame whose timestamp is <= t, which is what a live
camera feeding the pipeline would show at t. Frames are fitted into the
requested (H, W) as RGB uint8 exactly as the live producers fit a camera's
(adafocus.data.resize: aspect kept, letterboxed when it differs); times without
a labelled segment (and times after the end of the video, where the last frame
is held) get label -1, which training ignores.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from adafocus.data.resize import FrameResizer

IGNORE = -1
_CLIP_HEADER = ("file", "label")
_SEGMENT_HEADER = ("file", "start_s", "end_s", "label")
_EPS = 1e-6  # seconds: timestamps within this of a sample time count as shown by then


class DatasetError(ValueError):
    """A problem with the user's dataset, phrased so the user can fix it."""


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    label: int
    line: int  # CSV line it came from, for error messages


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    duration_s: float
    fps: float
    height: int
    width: int
    start_offset_s: float  # timestamp of the first frame: label times are relative to it
    segments: tuple[Segment, ...]  # sorted by start, non-overlapping


def _read_rows(csv_path: Path) -> tuple[bool, list[tuple[int, dict[str, str]]]]:
    """(segmented?, [(line number, row)]) after checking the header."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"labels file {csv_path} not found") from None
    reader = csv.reader(text.splitlines())
    header = tuple(h.strip() for h in next(reader, []))
    if header not in (_CLIP_HEADER, _SEGMENT_HEADER):
        raise DatasetError(
            f"{csv_path}:1: header must be 'file,label' or 'file,start_s,end_s,label', "
            f"got {','.join(header) or 'nothing'!r}")
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise DatasetError(f"{csv_path}:{line}: expected {len(header)} fields "
                               f"({','.join(header)}), got {len(values)}")
        row = {k: v.strip() for k, v in zip(header, values, strict=True)}
        if not row["file"] or not row["label"]:
            raise DatasetError(f"{csv_path}:{line}: empty file name or label")
        rows.append((line, row))
    if not rows:
        raise DatasetError(f"{csv_path}: no labelled rows")
    return header == _SEGMENT_HEADER, rows


def _seconds(csv_path: Path, line: int, row: dict[str, str], key: str) -> float:
    try:
        value = float(row[key])
    except ValueError:
        raise DatasetError(f"{csv_path}:{line}: {key} {row[key]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DatasetError(f"{csv_path}:{line}: {key} must be a finite number >= 0, got {value}")
    return value


@contextlib.contextmanager
def _decoding(path: Path) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """(container, video stream) of a listed video, decoded with threads; a PyAV or OS
    error while opening or decoding it becomes a DatasetError naming the file."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield container, stream
    except (av.FFmpegError, OSError) as e:
        raise DatasetError(f"decoding {path} failed: {e}") from None


def _probe(path: Path) -> tuple[float, float, int, int, float]:
    """(duration_s, fps, height, width, start_offset_s); decodes the first frame so a
    file with a valid header but undecodable video is caught here."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DatasetError("it has no video stream")
        stream = container.streams.video[0]
        first = next(container.decode(stream), None)
        if first is None:
            raise DatasetError("it contains no decodable video frame")
        offset = float(first.time or 0.0)
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:  # e.g. raw elementary streams: find the last timestamp the slow way
            last_time = max((f.time or 0.0 for f in container.decode(stream)),
                            default=first.time or 0.0)
            duration = float(last_time) - offset + (1.0 / fps if fps else 0.0)
        return duration, fps, first.height, first.width, offset


class VideoFolder:
    """A checked, labelled folder of videos.

    ``class_names`` defaults to the sorted labels of the CSV; pass the names of
    an existing model (e.g. a checkpoint's) to evaluate on a new folder, and a
    label outside them is an error.
    """

    def __init__(self, root: str | Path, labels_csv: str | Path | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        self.labels_csv = Path(labels_csv) if labels_csv is not None else self.root / "labels.csv"
        segmented, rows = _read_rows(self.labels_csv)
        names = sorted({row["label"] for _, row in rows}) if class_names is None else list(
            class_names)
        index = {n: i for i, n in enumerate(names)}
        self.class_names = names
        self.segmented = segmented
        per_file: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for line, row in rows:
            if row["label"] not in index:
                raise DatasetError(
                    f"{self.labels_csv}:{line}: unknown label {row['label']!r}; "
                    f"known labels: {', '.join(names)}")
            per_file.setdefault(row["file"], []).append((line, row))
        self.videos = [self._open(name, entries, index) for name, entries in per_file.items()]

    def _open(self, name: str, entries: list[tuple[int, dict[str, str]]],
              index: dict[str, int]) -> VideoInfo:
        where = f"{self.labels_csv}:{entries[0][0]}"
        path = (self.root / name).resolve()
        if not path.is_file():
            raise DatasetError(f"{where}: video file {name!r} not found (looked for {path})")
        try:
            duration, fps, height, width, offset = _probe(path)
        except DatasetError as e:
            raise DatasetError(f"{where}: {name!r} is not a readable video: {e}") from None
        except (av.FFmpegError, OSError) as e:
            raise DatasetError(f"{where}: {name!r} is not a readable video: {e}") from None
        if not self.segmented:
            if len(entries) > 1:
                raise DatasetError(f"{self.labels_csv}:{entries[1][0]}: {name!r} is listed twice "
                                   f"(first on line {entries[0][0]}); use the "
                                   "file,start_s,end_s,label layout for several labels")
            line, row = entries[0]
            return VideoInfo(path, duration, fps, height, width, offset,
                             (Segment(0.0, duration, index[row["label"]], line),))
        segments = []
        for line, row in entries:
            start = _seconds(self.labels_csv, line, row, "start_s")
            end = _seconds(self.labels_csv, line, row, "end_s")
            if end <= start:
                raise DatasetError(f"{self.labels_csv}:{line}: end_s {end} must be after "
                                   f"start_s {start}")
            if start >= duration:
                raise DatasetError(f"{self.labels_csv}:{line}: segment starts at {start} s, "
                                   f"after the end of {name!r} ({duration:.3f} s)")
            segments.append(Segment(start, min(end, duration), index[row["label"]], line))
        segments.sort(key=lambda s: s.start_s)
        for a, b in zip(segments, segments[1:], strict=False):
            if b.start_s < a.end_s:
                raise DatasetError(
                    f"{self.labels_csv}: segments of {name!r} on lines {a.line} "
                    f"[{a.start_s}, {a.end_s}) and {b.line} [{b.start_s}, {b.end_s}) overlap")
        return VideoInfo(path, duration, fps, height, width, offset, tuple(segments))

    def __len__(self) -> int:
        return len(self.videos)

    def subset(self, indices: Sequence[int]) -> VideoFolder:
        """The same folder (same class names) restricted to some of its clips."""
        part = copy.copy(self)
        part.videos = [self.videos[i] for i in indices]
        return part

    def main_label(self, video: int) -> int:
        """The label covering the most time of one clip."""
        time: dict[int, float] = {}
        for s in self.videos[video].segments:
            time[s.label] = time.get(s.label, 0.0) + s.end_s - s.start_s
        return max(time, key=lambda label: (time[label], -label))

    def label_at(self, video: int, t: float) -> int:
        """Label at time t seconds of one video; -1 outside every labelled segment."""
        segments = self.videos[video].segments
        k = bisect_right([s.start_s for s in segments], t + _EPS) - 1
        if k >= 0 and t < segments[k].end_s - _EPS:
            return segments[k].label
        return IGNORE

    def frames_at(self, video: int, times: Sequence[float], height: int,
                  width: int) -> np.ndarray:
        """(len(times), height, width, 3) uint8: for each non-decreasing time (s), the
        newest frame with timestamp <= t (the first frame before it starts, the
        last one after it ends)."""
        info = self.videos[video]
        times = np.asarray(times, np.float64)
        if times.size and (np.diff(times) < 0).any():
            raise ValueError("times must be non-decreasing")
        out = np.empty((len(times), height, width, 3), np.uint8)
        if not len(times):
            return out
        with _decoding(info.path) as (container, stream):
            if times[0] > 0:
                target = (times[0] + info.start_offset_s) / stream.time_base
                container.seek(int(target), stream=stream, backward=True)
            k = self._fill(container.decode(stream), info, times, out,
                           FrameResizer(height, width))
        if k == 0:
            raise DatasetError(f"decoding {info.path} gave no frame near {times[0]:.3f} s")
        return out

    @staticmethod
    def _fill(frames, info: VideoInfo, times: np.ndarray, out: np.ndarray,
              resize: FrameResizer) -> int:
        """Walk the decoded frames, writing each into the sample times it covers
        (converting a frame to RGB only if some sample shows it); returns how
        many samples were written (all, unless nothing decoded)."""
        k, held = 0, None
        shown: tuple[av.VideoFrame | None, np.ndarray | None] = (None, None)

        def rgb(frame: av.VideoFrame) -> np.ndarray:
            nonlocal shown
            if shown[0] is not frame:
                shown = (frame, resize(frame))
            return shown[1]

        for frame in frames:
            if frame.time is None:
                continue
            t_frame = frame.time - info.start_offset_s
            while k < len(times) and times[k] < t_frame - _EPS:
                # before the first decoded frame, that frame is what the camera shows
                out[k] = rgb(held if held is not None else frame)
                k += 1
            if k == len(times):
                return k
            held = frame
        if held is not None:
            out[k:] = rgb(held)
            k = len(times)
        return k

    def decode_all(self, video: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Every frame of one video: (timestamps (N,) s from its start, frames (N, height,
        width, 3) uint8), fitted like ``frames_at``'s. A time t then shows frame
        ``shown_index(times, t)``: the same picture ``frames_at`` decodes for it."""
        info = self.videos[video]
        times, frames = [], []
        resize = FrameResizer(height, width)
        with _decoding(info.path) as (container, stream):
            for frame in container.decode(stream):
                if frame.time is not None:
                    times.append(frame.time - info.start_offset_s)
                    frames.append(resize(frame).copy())
        if not frames:
            raise DatasetError(f"decoding {info.path} gave no frame")
        return np.asarray(times, np.float64), np.stack(frames)

    def clip(self, video: int, start_s: float, length: int, fps: float, height: int,
             width: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``length`` frames sampled at ``start_s + i * stride / fps``: a causal
        sequence as the live pipeline sees it at ``fps`` (stride > 1: frames skipped).
        Returns ((T, H, W, 3) uint8, (T,) int64 labels, -1 where unlabelled)."""
        if length < 1 or stride < 1 or fps <= 0:
            raise ValueError(f"need length >= 1, stride >= 1, fps > 0; got {length}, "
                             f"{stride}, {fps}")
        times = start_s + np.arange(length) * (stride / fps)
        labels = np.array([self.label_at(video, t) for t in times], np.int64)
        return self.frames_at(video, times, height, width), labels


def shown_index(times: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Index of the frame a camera shows at time(s) t, given a video's frame timestamps:
    the newest with timestamp <= t (the first before the video starts)."""
    return np.maximum(np.searchsorted(times, np.asarray(t) + _EPS, side="right") - 1, 0)


def split_by_clip(folder: VideoFolder, fraction: float, seed: int
                  ) -> tuple[VideoFolder, VideoFolder]:
    """(training, validation) parts of a folder, whole clips on either side, never one
    clip on both: frames of one clip are near-copies of each other, so validating on
    frames of training clips measures memory, not recognition. About ``fraction`` of
    the clips of each main label (``main_label``) are held out, at least one in all,
    chosen by ``seed``; a label with a single clip keeps it for training."""
    if len(folder) < 2:
        raise DatasetError(f"{folder.labels_csv}: a validation split needs at least 2 clips, "
                           f"found {len(folder)}; add clips or give a validation folder")
    rng = np.random.default_rng([seed, 0x5E1])
    by_label: dict[int, list[int]] = {}
    for k in range(len(folder)):
        by_label.setdefault(folder.main_label(k), []).append(k)
    held: list[int] = []
    for label in sorted(by_label):
        clips = [int(k) for k in rng.permutation(by_label[label])]
        if len(clips) > 1:
            held += clips[:min(len(clips) - 1, round(fraction * len(clips)))]
    if not held:  # every label too rare for its share: hold out one clip of the commonest
        largest = max(by_label.values(), key=len)
        held = [int(rng.choice(largest))] if len(largest) > 1 else [len(folder) - 1]
    kept = [k for k in range(len(folder)) if k not in set(held)]
    return folder.subset(kept), folder.subset(sorted(held))
