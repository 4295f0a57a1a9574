"""The built-in camera: renders a procedural scene in real time, with its
ground truth, so demos, benchmarks and tests have a live source whose right
answer is known.

Scenes share one small API (the one `adafocus.data.moving_digits` defines):
`frame(index) -> (H, W, 3) uint8`, `label_at(index) -> int`, `class_names`.
`synthetic://pattern` is defined here; `synthetic://digits` is the moving-digits
scene, imported only when asked for (it pulls in scikit-learn's digits).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from stream.ingest.sources import DecodedFrame
from stream.ingest.uri import SourceError, SourceSpec


class Scene(Protocol):
    class_names: list[str]

    def frame(self, index: int) -> np.ndarray: ...

    def label_at(self, index: int) -> int: ...


class PatternScene:
    """A moving test pattern: a scrolling colour gradient and a bright square
    circling the frame. The label is the quadrant the square's centre is in.
    Rows at the top carry the frame index as a 16-bit code (`decode_index`), so
    any consumer can check which frame it holds from the pixels alone."""

    class_names = ["top-left", "top-right", "bottom-left", "bottom-right"]
    CODE_BITS = 16

    def __init__(self, seed: int = 0, height: int = 128, width: int = 128, fps: float = 25.0):
        if height < 16 or width < 2 * self.CODE_BITS:
            raise ValueError(f"pattern frames must be at least 16x32, got {height}x{width}")
        self.height, self.width, self.fps = height, width, fps
        rng = np.random.default_rng(seed)
        self._phase = rng.uniform(0.0, 2 * math.pi, size=2)
        self._freq = rng.uniform(0.12, 0.25, size=2)  # Hz: a quadrant lasts seconds
        self._colour = rng.integers(160, 256, size=3).astype(np.uint8)
        ys, xs = np.mgrid[0:height, 0:width]
        self._background = np.stack(
            [xs * 255 // max(1, width - 1), ys * 255 // max(1, height - 1), (xs + ys) % 64 + 32],
            axis=-1,
        ).astype(np.uint8)
        self._side = max(2, min(height, width) // 4)
        self._strip = max(2, height // 16)
        self._block = width // self.CODE_BITS

    def _centre(self, index: int) -> tuple[float, float]:
        t = index / self.fps
        x = 0.5 + 0.38 * math.sin(2 * math.pi * self._freq[0] * t + self._phase[0])
        y = 0.5 + 0.38 * math.sin(2 * math.pi * self._freq[1] * t + self._phase[1])
        return x, y

    def label_at(self, index: int) -> int:
        x, y = self._centre(index)
        return 2 * int(y >= 0.5) + int(x >= 0.5)

    def frame(self, index: int) -> np.ndarray:
        image = np.roll(self._background, shift=index % self.width, axis=1)
        x, y = self._centre(index)
        half = self._side // 2
        top = min(max(0, round(y * self.height) - half), self.height - self._side)
        left = min(max(0, round(x * self.width) - half), self.width - self._side)
        image[top : top + self._side, left : left + self._side] = self._colour
        strip = image[: self._strip]
        for bit in range(self.CODE_BITS):
            value = 255 if (index >> bit) & 1 else 0
            strip[:, bit * self._block : (bit + 1) * self._block] = value
        return image

    @classmethod
    def decode_index(cls, image: np.ndarray) -> int:
        """The frame index (mod 2**16) a pattern frame carries in its top rows."""
        height, width = image.shape[:2]
        strip, block = max(2, height // 16), width // cls.CODE_BITS
        index = 0
        for bit in range(cls.CODE_BITS):
            if image[:strip, bit * block : (bit + 1) * block].mean() > 127:
                index |= 1 << bit
        return index


def make_scene(name: str, params: dict[str, Any], height: int, width: int) -> Scene:
    """Build a scene by its synthetic:// name; errors become SourceError."""
    try:
        if name == "pattern":
            return PatternScene(params["seed"], height, width, params["fps"])
        try:
            from adafocus.data.moving_digits import MovingDigitsScene
        except ImportError as exc:
            raise SourceError(
                f"synthetic://digits needs adafocus.data.moving_digits (import failed: {exc})"
            ) from None
        return MovingDigitsScene(params["seed"], height, width, params["split"], params["fps"])
    except ValueError as exc:
        raise SourceError(f"synthetic://{name}: {exc}") from None


class SyntheticSource:
    """Plays a scene like a camera: frame `i` is due at start + i / fps; when
    rendering falls behind, it skips to the frame due now (as a camera drops
    frames) instead of drifting ever later."""

    end_note = ""

    def __init__(self, spec: SourceSpec, height: int, width: int, stop: threading.Event):
        self._scene = make_scene(spec.scene or "", spec.scene_params, height, width)
        self._fps = float(spec.scene_params["fps"])
        self._stop = stop
        self.class_names = list(self._scene.class_names)
        self.description = f"synthetic {spec.scene} {width}x{height} {self._fps:g} fps"

    def frames(self) -> Iterator[DecodedFrame]:
        fps, stop, scene = self._fps, self._stop, self._scene
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                if stop.wait(delay):
                    return
            elif delay < -1.0 / fps:
                index = int((time.monotonic() - start) * fps)
            yield DecodedFrame(scene.frame(index), index / fps, scene.label_at(index))
            index += 1

    def close(self) -> None:
        """Nothing to release; here for the Source interface."""
