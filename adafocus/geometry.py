"""Frame geometry: how a video's pictures become the model's frames.

One rule for training, evaluation and the live pipeline, so that a model sees
the same pixels in all three: the picture is scaled to fit inside the model's
frame with its aspect ratio kept, centred, and the rest is black (letterbox;
pillarbox for a tall picture). A picture of the model's own aspect ratio is
simply resized. Stretching a 4:3 camera into a square model would distort every
object by a third, differently from the videos the model was trained on.

A model's frame size itself comes from the data when the train config does not
set it (adafocus.train.data): the videos' own size, so 192x144 videos give a
144x192 (height x width) model, with the glance scaled by the same factor as
the preset's.

Torch-free and PyAV-free: the resizing itself is adafocus.data.resize.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

Size = tuple[int, int]  # (height, width), as everywhere in adafocus


@dataclass(frozen=True)
class Placement:
    """Where a fitted picture lands in the target frame: its scaled size and the
    offset of its top-left corner (pixels)."""

    height: int
    width: int
    top: int
    left: int

    def fills(self, target: Size) -> bool:
        """True when the picture covers the whole target (no bars)."""
        return (self.height, self.width) == tuple(target)


def place(source: Size, target: Size) -> Placement:
    """Fit a ``source`` (height, width) picture into a ``target`` frame, keeping its
    aspect ratio; the result is centred (odd leftover pixels go below / right)."""
    sh, sw = source
    th, tw = target
    if min(sh, sw, th, tw) < 1:
        raise ValueError(f"sizes must be positive, got source {source} and target {target}")
    scale = min(th / sh, tw / sw)
    height = min(th, max(1, round(sh * scale)))
    width = min(tw, max(1, round(sw * scale)))
    return Placement(height, width, (th - height) // 2, (tw - width) // 2)


def common_size(sizes: Iterable[Size]) -> Size:
    """The frame size most videos have (ties: the larger one): the model's native
    frame; videos of another size are fitted into it."""
    counts = Counter(tuple(s) for s in sizes)
    if not counts:
        raise ValueError("no video sizes to choose from")
    return max(counts, key=lambda s: (counts[s], s[0] * s[1], s))


def scaled_glance(frame: Size, base_frame: Size, base_glance: Size) -> Size:
    """The glance size for ``frame`` that keeps a preset's glance/frame ratio per axis
    (tiny: 32/128, a quarter; paper: 224/224, the whole frame): the glance network
    sees the frame downsampled but never distorted."""
    return (max(1, round(frame[0] * base_glance[0] / base_frame[0])),
            max(1, round(frame[1] * base_glance[1] / base_frame[1])))


def size_text(size: Size) -> str:
    """'192x144' for (144, 192): sizes as people write them (width first)."""
    return f"{size[1]}x{size[0]}"


__all__ = ["Placement", "Size", "common_size", "place", "scaled_glance", "size_text"]
