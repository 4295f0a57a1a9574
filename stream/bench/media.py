"""The bench's video: H.264 files of the moving-digits scene, encoded once and cached,
each with a sidecar of the true label of every frame.

Why files and not `synthetic://digits`: the bench measures what users run, and
their cameras arrive compressed, so every frame pays a real H.264 decode in the
producer (PyAV, the same code path as an RTSP camera or a file). Results carry
the frame's `pts`; `frame index = round(pts * fps)` looks up the ground truth in
the sidecar, so accuracy needs nothing from the pipeline beyond the label
message (README.md "Contracts: result messages").

Sources larger than the model's frame (`video`, e.g. 640x360 or 1280x720) are the
same scene rendered at the frame size and scaled up before encoding: the decoder
then does the work of a camera of that resolution (and scales back down). Of
another aspect than the frame's (16:9 from a square scene), the picture comes
back letterboxed and squashed, so only the cost is comparable there, not the
accuracy. Upscaled frames compress better than a real camera's, so their decode
is, if anything, cheaper.

The cache key holds everything the pixels depend on (seed, split, size, rate,
length, encoder settings and the scene's source code), so a changed scene
re-encodes instead of silently serving stale clips.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from adafocus.data.export import ENCODER

FPS = 25.0
FIRST_SEED = 1000  # test-split scenes; training uses other seeds and the train split
SPLIT = "test"


@dataclass(frozen=True)
class Clip:
    """One encoded scene: `labels[i]` is the class shown in frame i."""

    path: Path
    labels: np.ndarray
    fps: float
    class_names: tuple[str, ...]
    seed: int
    size: tuple[int, int]  # (height, width) the scene was rendered at

    @cached_property
    def scene(self):
        """The scene the clip was encoded from (built once: a scene costs ~0.2 s to
        set up, a frame of it ~0.3 ms)."""
        return _scene(self.seed, self.size, self.fps)

    def rendered(self, index: int) -> np.ndarray:
        """Frame `index` as rendered, before encoding (at `size`)."""
        return self.scene.frame(index)

    def truth_at(self, pts: float | None) -> int:
        """Class id of the frame with this presentation time, -1 when unknown."""
        if pts is None:
            return -1
        index = int(round(pts * self.fps))
        return int(self.labels[index]) if 0 <= index < len(self.labels) else -1


def scene_clips(cache_dir: Path, count: int, seconds: float, size: tuple[int, int] = (128, 128),
                fps: float = FPS, log: Callable[[str], None] = print,
                video: tuple[int, int] | None = None) -> list[Clip]:
    """`count` clips of `seconds` each (seeds FIRST_SEED, FIRST_SEED+1, ...) of the
    scene at `size` (height, width), encoded at `video` (default: `size`) into
    `cache_dir` on first use."""
    frames = int(round(seconds * fps))
    return [_clip(cache_dir, FIRST_SEED + i, frames, size, fps, log, video or size)
            for i in range(count)]


def _scene_source_digest() -> str:
    from adafocus.data import moving_digits

    return hashlib.sha256(Path(moving_digits.__file__).read_bytes()).hexdigest()


def _clip(cache_dir: Path, seed: int, frames: int, size: tuple[int, int], fps: float,
          log: Callable[[str], None], encoded: tuple[int, int]) -> Clip:
    height, width = size
    parts = [seed, SPLIT, height, width, fps, frames, ENCODER, _scene_source_digest()]
    if encoded != size:
        parts.append(list(encoded))
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    stem = (f"digits-s{seed}-{width}x{height}-{fps:g}fps-{frames}f-{digest}"
            if encoded == size else
            f"digits-s{seed}-{width}x{height}-as-{encoded[1]}x{encoded[0]}-{fps:g}fps-"
            f"{frames}f-{digest}")
    video, sidecar = cache_dir / f"{stem}.mp4", cache_dir / f"{stem}.labels.json"
    if not (video.is_file() and sidecar.is_file()):
        log(f"encoding {video.name} ({frames} frames, once; cached in {cache_dir})")
        _encode(video, sidecar, seed, frames, size, fps, encoded)
    meta = json.loads(sidecar.read_text())
    return Clip(video, np.asarray(meta["labels"], dtype=np.int16), float(meta["fps"]),
                tuple(meta["class_names"]), seed, size)


def _scene(seed: int, size: tuple[int, int], fps: float):
    from adafocus.data.moving_digits import MovingDigitsScene

    return MovingDigitsScene(seed, size[0], size[1], split=SPLIT, fps=fps)


def _encode(video: Path, sidecar: Path, seed: int, frames: int, size: tuple[int, int],
            fps: float, encoded: tuple[int, int]) -> None:
    """Render and encode; both files appear atomically (temp + rename), sidecar last,
    so a crash mid-encode leaves no clip that looks complete."""
    import av

    from adafocus.data.export import write_clip

    height, width = size
    scene = _scene(seed, size, fps)

    def rendered() -> Iterator[np.ndarray]:
        for index in range(frames):
            image = scene.frame(index)
            if encoded != size:  # the camera's resolution (see the module docstring)
                image = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                    encoded[1], encoded[0], "rgb24").to_ndarray()
            yield image

    write_clip(video, rendered(), fps)
    labels = [scene.label_at(i) for i in range(frames)]
    meta = {"seed": seed, "split": SPLIT, "fps": fps, "frames": frames, "size": [height, width],
            "class_names": list(scene.class_names), "labels": labels}
    fd, tmp = tempfile.mkstemp(dir=sidecar.parent, prefix=f".{sidecar.stem}.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, sidecar)
