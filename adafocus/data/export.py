"""Scenes written as a labelled video folder: H.264 clips plus ``labels.csv``.

Why: the folder path (adafocus.data.video_folder: training, ``eval --data``) needs a
benchmark whose right answers are known, and users need an example of the layout
they are asked for. Any scene with the small scene API (``frame(index)``,
``label_at(index)``, ``class_names``: the moving-digits scene, the synthetic
cameras) becomes one clip each, encoded like a camera (H.264, no B-frames, a
keyframe a second), labelled in the ``file,start_s,end_s,label`` layout from the
scene's own timeline. No boxes are written: a user's folder has none either.
"""

from __future__ import annotations

import csv
import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

# Camera-like H.264: no B-frames (frames leave the encoder in display order), a
# keyframe every second at 25 fps, visually lossless.
ENCODER = {"codec": "libx264", "crf": "18", "bf": "0", "g": "25", "preset": "veryfast"}
LABELS = "labels.csv"


class Scene(Protocol):
    class_names: list[str]

    def frame(self, index: int) -> np.ndarray: ...

    def label_at(self, index: int) -> int: ...


def write_clip(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (even H and W) as an H.264 MP4 at ``fps``;
    the file appears under its name only when complete (temp file + rename)."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames to encode")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(tmp, "w", format="mp4") as out:
            stream = out.add_stream(ENCODER["codec"], rate=Fraction(fps).limit_denominator(1001))
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.options = {k: v for k, v in ENCODER.items() if k != "codec"}
            for image in itertools.chain([first], frames):
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        os.chmod(tmp, 0o644)  # a user's video, not a secret (mkstemp makes it 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def segments(labels: Sequence[int], fps: float) -> list[tuple[float, float, int]]:
    """Runs of equal per-frame labels as (start_s, end_s, label), end exclusive; frame
    i is shown from i / fps."""
    labels = np.asarray(labels)
    if not len(labels):
        return []
    cuts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(labels)]))
    return [(s / fps, e / fps, int(labels[s])) for s, e in zip(starts, ends, strict=True)]


def export_folder(scenes: Sequence[Scene], out: str | os.PathLike, seconds: float, fps: float,
                  log: Callable[[str], None] = print) -> Path:
    """Write ``scenes[k]`` as ``clip-KKK.mp4`` (``seconds`` from frame 0 at ``fps``) and
    one ``labels.csv`` for all of them, written last: a folder with a labels file is
    complete. Refuses a folder that already holds a labels file."""
    out = Path(out)
    if (out / LABELS).exists():
        raise FileExistsError(f"{out / LABELS} already exists; export into a new folder")
    count = int(round(seconds * fps))
    if count < 1 or not scenes:
        raise ValueError(f"nothing to export: {len(scenes)} scene(s) of {count} frame(s)")
    rows = []
    for k, scene in enumerate(scenes):
        name = f"clip-{k:03d}.mp4"
        write_clip(out / name, (scene.frame(i) for i in range(count)), fps)
        labels = [scene.label_at(i) for i in range(count)]
        rows += [(name, f"{start:.6g}", f"{end:.6g}", scene.class_names[label])
                 for start, end, label in segments(labels, fps)]
        log(f"wrote {out / name} ({count} frames, {len(set(labels))} label(s))")
    tmp = out / f".{LABELS}.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "start_s", "end_s", "label"])
        writer.writerows(rows)
    os.replace(tmp, out / LABELS)
    return out / LABELS


__all__ = ["ENCODER", "LABELS", "Scene", "export_folder", "segments", "write_clip"]
