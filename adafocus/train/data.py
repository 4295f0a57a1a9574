"""Training batches from the config's data section.

Wires the data package's causal sequence sampler (adafocus.data.streams) to the
training loop. Sequence i of a stage is `SequenceDataset.item(i)`, a pure
function of (seed, i), and step k takes items k*B .. k*B+B-1: a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from adafocus.data.streams import DigitsSource, FolderSource, SequenceDataset
from adafocus.runtime import normalize_frames
from adafocus.train.config import DataSection
from adafocus.train.loop import Batch


def sources(data: DataSection, frame_size: tuple[int, int]):
    """(train source, validation source, class names) of the data section."""
    h, w = frame_size
    if data.source == "folder":
        from adafocus.data.video_folder import VideoFolder

        folder = VideoFolder(data.root)
        src = FolderSource(folder, h, w, data.fps)
        return src, src, list(folder.class_names)
    train = DigitsSource("train", h, w, data.fps, scenes=data.train_scenes,
                         cache=data.train_scenes)  # ~2 MB each: keep all, never rebuild
    val = DigitsSource("val", h, w, data.fps, scenes=data.val_scenes)
    from adafocus.data.moving_digits import CLASS_NAMES

    return train, val, list(CLASS_NAMES)


def sequences(dataset: SequenceDataset, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Items first..first+count-1 stacked: uint8 (N, T, H, W, 3), int64 (N, T)."""
    items = [dataset.item(i) for i in range(first, first + count)]
    return (torch.stack([f for f, _ in items]).numpy(), torch.stack([y for _, y in items]).numpy())


def to_batch(frames: np.ndarray, labels: np.ndarray, device: torch.device,
             normalization: dict[str, list[float]]) -> Batch:
    mean = torch.tensor(normalization["mean"], device=device)
    std = torch.tensor(normalization["std"], device=device)
    x = normalize_frames(torch.from_numpy(frames).to(device), mean, std)
    return Batch(x, torch.from_numpy(labels).to(device))


def batch_sampler(source, data: DataSection, seed: int, device: torch.device,
                  normalization: dict[str, list[float]]) -> Callable[[int], Batch]:
    """sample(step) -> the step's batch of training sequences (every stage walks the
    same endless sequence of items from its start, like epochs over one dataset)."""
    dataset = SequenceDataset(source, data.seq_len, max_gap=data.max_gap,
                              gap_mode=data.gap_mode, change_fraction=data.change_fraction,
                              seed=seed)

    def sample(step: int) -> Batch:
        frames, labels = sequences(dataset, step * data.batch_size, data.batch_size)
        return to_batch(frames, labels, device, normalization)

    return sample


def object_crop_sampler(source: DigitsSource, patch: int, jitter: int, batch_size: int,
                        seed: int, device: torch.device, normalization: dict[str, list[float]]
                        ) -> Callable[[int], Batch]:
    """sample(step) -> patches around the digit (one-step "sequences", (B, 1, 3, P, P)).

    f_L's pretraining: the reference starts from ImageNet weights that already know
    objects; moving digits has no such backbone, so f_L first learns the training
    digits on patches placed around them (the scene's ground-truth box, shifted by
    up to `jitter` px). Only synthetic scenes know where the digit is.
    """
    h, w = source.height, source.width

    def sample(step: int) -> Batch:
        rng = np.random.default_rng([seed, 0x0B1EC7, step])
        frames = np.empty((batch_size, 1, patch, patch, 3), np.uint8)
        labels = np.empty((batch_size, 1), np.int64)
        for n in range(batch_size):
            scene = source.scene(int(rng.integers(source.scenes)))
            index = int(rng.integers(0, 1_000_000))
            x0, y0, x1, y1 = scene.digit_box(index)
            cx = (x0 + x1) // 2 + int(rng.integers(-jitter, jitter + 1))
            cy = (y0 + y1) // 2 + int(rng.integers(-jitter, jitter + 1))
            ox = min(max(cx - patch // 2, 0), w - patch)
            oy = min(max(cy - patch // 2, 0), h - patch)
            frames[n, 0] = scene.frame(index)[oy:oy + patch, ox:ox + patch]
            labels[n, 0] = scene.label_at(index)
        return to_batch(frames, labels, device, normalization)

    return sample


def box_sequence_sampler(source: DigitsSource, seq_len: int, max_gap: int, batch_size: int,
                         seed: int, device: torch.device, normalization: dict[str, list[float]]
                         ) -> Callable[[int], tuple[Batch, torch.Tensor]]:
    """sample(step) -> (causal sequences, digit boxes (B, T, 4) pixel x0, y0, x1, y1).

    For the box warm starts (a departure from the papers, see stages.py): sequences
    of one scene at random gaps of 1..`max_gap` frames, like `batch_sampler`'s, with
    the scene's ground-truth digit box of every frame. Label changes happen where
    the scene has them (no forced fraction). `seq_len` 1 gives single frames.
    """

    def sample(step: int) -> tuple[Batch, torch.Tensor]:
        rng = np.random.default_rng([seed, 0xB0C5, step])
        frames = np.empty((batch_size, seq_len, source.height, source.width, 3), np.uint8)
        labels = np.empty((batch_size, seq_len), np.int64)
        boxes = np.empty((batch_size, seq_len, 4), np.float32)
        for n in range(batch_size):
            scene = source.scene(int(rng.integers(source.scenes)))
            index = int(rng.integers(0, 1_000_000))
            for t in range(seq_len):
                frames[n, t] = scene.frame(index)
                labels[n, t] = scene.label_at(index)
                boxes[n, t] = scene.digit_box(index)
                index += int(rng.integers(1, max_gap + 1))
        return to_batch(frames, labels, device, normalization), torch.from_numpy(boxes).to(device)

    return sample
