"""The run's data and its training batches, from the config's data section.

`open_data` opens the source (moving digits, or a folder with a real validation
split) and says what the data decides of the model: its class count and, for a
folder, its frame geometry (adafocus.geometry). The samplers wire the data
package's causal sequence sampler (adafocus.data.streams) to the training loop.
Sequence i of a stage is `SequenceDataset.item(i)`, a pure function of (seed, i),
and step k takes items k*B .. k*B+B-1: a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adafocus.data.moving_digits import CLASS_NAMES
from adafocus.data.streams import DigitsSource, FolderSource, SequenceDataset, SequenceSource
from adafocus.data.video_folder import VideoFolder, split_by_clip
from adafocus.geometry import common_size, scaled_glance, size_text
from adafocus.runtime import normalize_frames
from adafocus.train.config import DataSection, TrainConfig, model_config
from adafocus.train.loop import Batch


@dataclass
class TrainingData:
    """What the data section gives a run: the training and validation sources, the
    class names, what the data decides of the model (`decided`, for
    config.model_config), whether it knows object boxes (the box-only stages need
    them) and plain-data summaries of the data and of its validation part for the
    checkpoint."""

    train: SequenceSource
    val: SequenceSource
    class_names: list[str]
    decided: dict[str, Any]
    knows_boxes: bool
    summary: dict[str, Any]
    validation: dict[str, Any]


def open_data(cfg: TrainConfig) -> TrainingData:
    """Open (and check) the run's data; raises DatasetError (a ValueError) naming the
    CSV line for a bad folder, TrainConfigError when it and the model config clash."""
    if cfg.data.source == "folder":
        return _folder_data(cfg)
    data = cfg.data
    decided = {"num_classes": len(CLASS_NAMES)}
    h, w = model_config(cfg, "v1", decided).frame_size
    train = DigitsSource("train", h, w, data.fps, scenes=data.train_scenes,
                         cache=data.train_scenes)  # ~2 MB each: keep all, never rebuild
    val = DigitsSource("val", h, w, data.fps, scenes=data.val_scenes)
    return TrainingData(train, val, list(CLASS_NAMES), decided, True,
                        {"source": "moving_digits", "train_scenes": data.train_scenes},
                        {"kind": "moving-digits val split", "scenes": data.val_scenes})


def _folder_data(cfg: TrainConfig) -> TrainingData:
    """A folder validated on `val_root`, or on `val_fraction` of its clips held out."""
    data = cfg.data
    folder = VideoFolder(data.root)
    if data.val_root is not None:
        train, val = folder, VideoFolder(data.val_root, class_names=folder.class_names)
        validation = {"kind": "folder", "root": data.val_root, "clips": len(val)}
    else:
        train, val = split_by_clip(folder, data.val_fraction, cfg.seed)
        validation = {"kind": "held out by clip", "fraction": data.val_fraction,
                      "clips": [v.path.name for v in val.videos]}
    decided, geometry = _geometry(cfg, [(v.height, v.width)
                                        for v in train.videos + val.videos],
                                  len(folder.class_names))
    h, w = model_config(cfg, "v1", decided).frame_size
    summary = {"source": "folder", "root": data.root, "train_clips": len(train),
               "geometry": geometry}
    return TrainingData(FolderSource(train, h, w, data.fps), FolderSource(val, h, w, data.fps),
                        list(folder.class_names), decided, False, summary, validation)


def _geometry(cfg: TrainConfig, sizes: list[tuple[int, int]], classes: int
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the videos decide of the model, how, for the summary): the videos' own
    frame size unless the config sets one, and a glance scaled like the preset's."""
    decided: dict[str, Any] = {"num_classes": classes}
    counts = Counter(size_text(s) for s in sizes)
    overrides = cfg.model.overrides
    if "frame_size" in overrides:
        return decided, {"frame_size": "model.overrides.frame_size; videos fitted "
                                       "(letterboxed where their aspect differs)",
                         "video_sizes": dict(counts)}
    native = common_size(sizes)
    decided["frame_size"] = native
    if "glance_size" not in overrides:
        base = model_config(cfg, "v1", {"num_classes": classes})
        decided["glance_size"] = scaled_glance(native, base.frame_size, base.glance_size)
    return decided, {"frame_size": f"the videos' own size {size_text(native)}"
                                   + ("" if len(counts) == 1 else
                                      "; videos of other sizes letterboxed"),
                     "video_sizes": dict(counts)}


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
