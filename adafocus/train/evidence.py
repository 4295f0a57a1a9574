"""Label-only boxes: where a frame classifier finds the evidence for a frame's label.

The frame stage (adafocus.train.stages.frame_classifier) trains f_L with a linear
head on globally max-pooled features of whole frames, from clip labels alone.
Applying that head at every position of f_L's map gives a class-evidence map (a
CAM, Zhou et al. 2016); in the channel of the frame's label its peak is where the
network found the object. A box of `box_size` px centred there stands in for the
object's box in the box stages (adafocus.train.boxes), so everything downstream is
as if the data knew its boxes.

How close the boxes come to the object on the moving-digits folder, read at one or
four half-stride offsets: adafocus.train.evidence_check (README, "Label-only
training").

Frames without a label (unlabelled stretches) use the network's own top class.
Two ways to get them, the same numbers either way:
- `EvidenceTable`: a folder decoded in memory, every frame once, in fixed chunks
  (results independent of the order training asks for them; recomputed the same
  after a resume);
- `EvidenceBoxes.__call__` on the frames of a batch, for sources too large to hold
  (moving digits, a folder over `data.cache_mb`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adafocus.models.local import LocalNet
from adafocus.runtime import normalize_frames
from adafocus.train.precision import autocast


class EvidenceBoxes:
    """Boxes (N, 4) px (x0, y0, x1, y1) from uint8 frames (N, H, W, 3) and labels (N,)."""

    def __init__(self, local: LocalNet, head: nn.Linear, normalization: dict[str, list[float]],
                 device: torch.device, precision: str, shifts: int = 4, box_size: int = 21,
                 chunk: int = 128) -> None:
        self.local, self.head, self.device, self.precision = local, head, device, precision
        self.mean = torch.tensor(normalization["mean"], device=device)
        self.std = torch.tensor(normalization["std"], device=device)
        self.shifts, self.box_size, self.chunk = shifts, box_size, chunk

    def __call__(self, frames: np.ndarray, labels: np.ndarray, refs: np.ndarray | None = None
                 ) -> np.ndarray:
        centres = [self.centres(frames[s:s + self.chunk], labels[s:s + self.chunk])
                   for s in range(0, len(frames), self.chunk)]
        c = np.concatenate(centres)
        half = self.box_size / 2
        return np.concatenate([c - half, c + half], axis=1).astype(np.float32)

    @torch.no_grad()
    def centres(self, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(N, 2) px (x, y): the peak of the label channel's evidence map."""
        was = self.local.training
        self.local.eval()
        x = normalize_frames(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device),
                             self.mean, self.std)
        y = torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
        step = float(self.local.stride)
        maps = self._label_map(x, y, 0, 0)
        if self.shifts == 4:
            half = int(step // 2)
            n, h, w = maps.shape
            fine = maps.new_empty(n, 2 * h, 2 * w)
            fine[:, ::2, ::2] = maps
            fine[:, ::2, 1::2] = self._label_map(x, y, half, 0)
            fine[:, 1::2, ::2] = self._label_map(x, y, 0, half)
            fine[:, 1::2, 1::2] = self._label_map(x, y, half, half)
            maps, step = fine, step / 2
        w = maps.shape[2]
        peak = maps.flatten(1).argmax(1)
        self.local.train(was)
        return (torch.stack([peak % w, peak // w], 1).float() * step + 0.5).cpu().numpy()

    def _label_map(self, x: Tensor, labels: Tensor, dx: int, dy: int) -> Tensor:
        """(N, h, w) evidence for each frame's label (its own top class where -1), of the
        frame content moved left/up by (dx, dy) px: cell j then sees stride * j + d."""
        if dx or dy:
            x = F.pad(x, (0, dx, 0, dy), mode="replicate")[..., dy:, dx:]
        with autocast(self.precision, self.device):
            fmap = self.local.feature_map(x)
        cam = torch.einsum("kc,nchw->nkhw", self.head.weight.float(), fmap.float())
        cam = cam + self.head.bias.float()[None, :, None, None]
        top = cam.amax((2, 3)).argmax(1)
        channel = torch.where(labels >= 0, labels, top)
        return cam[torch.arange(len(cam), device=cam.device), channel]


class EvidenceTable:
    """Boxes of every frame of a folder held in memory (FolderSource.decoded()),
    computed once in fixed chunks; looked up by the sampler's refs (video, index)."""

    def __init__(self, boxes: EvidenceBoxes, decoded: list[tuple[np.ndarray, np.ndarray]],
                 labels: list[np.ndarray]) -> None:
        self.table = [boxes(frames, y) for (_, frames), y in zip(decoded, labels, strict=True)]

    def __call__(self, frames: np.ndarray, labels: np.ndarray, refs: np.ndarray | None
                 ) -> np.ndarray:
        return np.stack([self.table[v][i] for v, i in refs])

