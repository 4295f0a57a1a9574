"""Small labelled folders and the tiny training runs the folder-path tests share:
moving-digits (or pattern) scenes exported as H.264 clips + labels.csv, exactly as
`adafocus-stream export` writes them, and a train config of a few steps on one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adafocus.data.export import export_folder
from adafocus.data.moving_digits import MovingDigitsScene
from stream.ingest.sources.synthetic import PatternScene

# A model small enough to train in seconds; the frame size is left to the data.
SMALL_MODEL = {"local_channels": [8, 16], "local_strides": [2, 2], "glance_channels": [8, 16],
               "glance_strides": [2, 2], "policy_hidden": 16, "classifier_hidden": 16}


def digits_folder(out: Path, clips: int = 4, seconds: float = 3.0,
                  size: tuple[int, int] = (48, 64), split: str = "train") -> Path:
    """`clips` moving-digits scenes (seeds 0..) of (height, width) `size`."""
    export_folder([MovingDigitsScene(k, *size, split=split) for k in range(clips)], out,
                  seconds, 25.0, log=lambda _: None)
    return out


def pattern_folder(out: Path, clips: int = 4, seconds: float = 3.0,
                   size: tuple[int, int] = (128, 128)) -> Path:
    """`clips` pattern scenes: four classes other than the digits'."""
    export_folder([PatternScene(k, *size) for k in range(clips)], out, seconds, 25.0,
                  log=lambda _: None)
    return out


class TextureScene:
    """A textured square drifting over blotches that change every frame; the texture is the class
    (stripes one way or the other, a checkerboard, diagonals: 2 px bands, all of the same
    mean grey). A glance downsampled 4x averages every texture to the same flat grey, so
    it can see where the square is but not which it is; only a full-resolution patch on
    the square tells the class. Clips with odd `seed // 4` switch texture half-way.
    A scene for learning where to look from labels alone, in seconds."""

    class_names = ["horizontal", "vertical", "checker", "diagonal"]

    def __init__(self, seed: int, size: int = 64, side: int = 12, fps: float = 25.0) -> None:
        rng = np.random.default_rng([seed, 0x7E57])
        self.seed, self.size, self.side, self.fps = seed, size, side, fps
        self._start = rng.uniform(0, size - side, 2)
        self._velocity = rng.uniform(-0.6, 0.6, 2)  # px per frame
        self._label = seed % 4
        self._switch = round(1.5 * fps) if (seed // 4) % 2 else None
        y, x = np.mgrid[0:side, 0:side]
        self._textures = [(y // 2) % 2, (x // 2) % 2, (x // 2 + y // 2) % 2, ((x + y) // 2) % 2]

    def label_at(self, index: int) -> int:
        switched = self._switch is not None and index >= self._switch
        return (self._label + switched) % 4

    def frame(self, index: int) -> np.ndarray:
        span = self.size - self.side
        pos = np.abs((self._start + self._velocity * index) % (2 * span) - span)  # bounces
        x0, y0 = (span - pos).round().astype(int)
        blotches = np.random.default_rng([self.seed, index]).integers(
            10, 90, (self.size // 8, self.size // 8)).astype(np.float32)
        image = np.kron(blotches, np.ones((8, 8), np.float32))
        image[y0:y0 + self.side, x0:x0 + self.side] = 40 + 175 * self._textures[
            self.label_at(index)]
        return np.repeat(image[..., None], 3, axis=2).astype(np.uint8)


def textures_folder(out: Path, clips: int, first_seed: int = 0, seconds: float = 3.0,
                    size: int = 96) -> Path:
    """`clips` texture scenes (seeds first_seed..), size x size, every class as often."""
    export_folder([TextureScene(first_seed + k, size) for k in range(clips)], out, seconds,
                  25.0, log=lambda _: None)
    return out


def folder_run(root: Path, checkpoint: Path, steps: int = 2,
               model: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
    """A train config of `steps` steps per stage on the folder `root`."""
    stage = {"steps": steps}
    return {
        "model": model if model is not None else {"overrides": SMALL_MODEL},
        "data": {"source": "folder", "root": str(root), "val_fraction": 0.25, "seq_len": 4,
                 "batch_size": 2, **data},
        "baselines": {"glance": stage, "full": stage},
        "v1": {"warmup": stage, "ppo": stage, "finetune": stage},
        "v2": {"train": stage},
        "calibration": {"sequences": 2, "seq_len": 8},
        "output": {"checkpoint": str(checkpoint), "save_every": 50},
    }
