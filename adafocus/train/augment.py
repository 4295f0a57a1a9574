"""Augmentation of training batches: translation and colour jitter per sequence.

Why: a folder of a few hundred clips is a few hundred digits (objects) seen from
one camera each, and a network trained from scratch on it memorises the clips
(README, "Label-only training"). Every frame of a sequence gets the same shift and
colours, so motion and label changes stay as the camera showed them, and the
sequence's boxes move with the pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(frames: Tensor, boxes: Tensor | None, generator: torch.Generator, shift: int,
            colour: float) -> tuple[Tensor, Tensor | None]:
    """frames (B, T, 3, H, W) normalised, boxes (B, T, 4) px or None -> the same,
    each sequence moved by a random (dx, dy) in [-shift, shift] px (border pixels
    repeated) and colour-jittered: per channel gain 1 +- colour and offset +- colour,
    and for half the sequences the channels permuted (one permutation per batch)."""
    b, t, c, h, w = frames.shape
    out = frames
    if shift:
        d = torch.randint(-shift, shift + 1, (b, 2), generator=generator)
        padded = F.pad(frames.flatten(1, 2), (shift,) * 4, mode="replicate")
        out = torch.stack([padded[n, :, shift - int(dy):shift - int(dy) + h,
                                  shift - int(dx):shift - int(dx) + w]
                           for n, (dx, dy) in enumerate(d.tolist())]).unflatten(1, (t, c))
        if boxes is not None:
            boxes = boxes + d.repeat(1, 2)[:, None].to(boxes)
    if colour:
        gain = 1 + (torch.rand(b, 1, c, 1, 1, generator=generator) * 2 - 1) * colour
        offset = (torch.rand(b, 1, c, 1, 1, generator=generator) * 2 - 1) * colour
        out = out * gain.to(out) + offset.to(out)
        swap = torch.rand(b, generator=generator) < 0.5
        order = torch.randperm(c, generator=generator)
        out = torch.where(swap.to(out.device)[:, None, None, None, None], out[:, :, order], out)
    return out, boxes
