"""The run's data and its training batches, from the config's data section.

`open_data` opens the source (moving digits, or a folder with a real validation
split) and says what the data decides of the model: its class count and, for a
folder, its frame geometry (adafocus.geometry). The samplers wire the data
package's causal sequence sampler (adafocus.data.streams) to the training loop:
sequences or single frames, augmented (adafocus.train.augment) and, for the box
stages, with each frame's box (`Boxes`: the scene's own, or label-only ones from
adafocus.train.evidence). Sequence i of a stage is `SequenceDataset.item(i)`, a
pure function of (seed, i), step k takes items k*B .. k*B+B-1, and a step's
augmentation and single frames are drawn from (seed, step): a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from adafocus.data.moving_digits import CLASS_NAMES
from adafocus.data.streams import DigitsSource, FolderSource, SequenceDataset, SequenceSource
from adafocus.data.video_folder import VideoFolder, split_by_clip
from adafocus.geometry import common_size, scaled_glance, size_text
from adafocus.runtime import normalize_frames
from adafocus.train.augment import augment
from adafocus.train.config import AugmentSection, DataSection, TrainConfig, model_config
from adafocus.train.loop import Batch

# (uint8 frames (N, H, W, 3), labels (N,), the source's refs (N, 2) or None) -> (N, 4) px
Boxes = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


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
    return TrainingData(FolderSource(train, h, w, data.fps, data.cache_mb),
                        FolderSource(val, h, w, data.fps), list(folder.class_names), decided,
                        False, summary, validation)


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


@dataclass
class Sampling:
    """How a run's training batches are made: device, normalisation, augmentation,
    and the box of each frame for the stages that ask for it (`boxes`, or None)."""

    seed: int
    device: torch.device
    normalization: dict[str, list[float]]
    augment: AugmentSection
    boxes: Boxes | None = None

    def batch(self, tag: int, step: int, frames: np.ndarray, labels: np.ndarray,
              refs: np.ndarray | None, with_boxes: bool) -> Batch:
        """uint8 (B, T, H, W, 3), labels (B, T), refs (B, T, 2) -> the step's Batch."""
        boxes = None
        if with_boxes:
            if self.boxes is None:
                raise ValueError("this stage needs boxes and the run has none")
            flat = frames.reshape(-1, *frames.shape[2:])
            got = self.boxes(flat, labels.reshape(-1),
                             None if refs is None else refs.reshape(-1, 2))
            boxes = torch.from_numpy(got).view(*labels.shape, 4).to(self.device)
        batch = to_batch(frames, labels, self.device, self.normalization)
        a = self.augment
        if a.shift or a.colour:
            key = np.random.SeedSequence([self.seed, 0xA06, tag, step]).generate_state(1)[0]
            gen = torch.Generator().manual_seed(int(key))
            frames_aug, boxes = augment(batch.frames, boxes, gen, a.shift, a.colour)
            batch = replace(batch, frames=frames_aug)
        return replace(batch, boxes=boxes)


def batch_sampler(source, data: DataSection, sampling: Sampling, *, with_boxes: bool = False,
                  seed: int | None = None) -> Callable[[int], Batch]:
    """sample(step) -> the step's batch of training sequences (every stage walks the
    same endless sequence of items from its start, like epochs over one dataset);
    `with_boxes`: each frame's box too (Batch.boxes)."""
    seed = sampling.seed if seed is None else seed
    dataset = SequenceDataset(source, data.seq_len, max_gap=data.max_gap,
                              gap_mode=data.gap_mode, change_fraction=data.change_fraction,
                              seed=seed)
    refs_needed = with_boxes

    def sample(step: int) -> Batch:
        items = [dataset.item_refs(i, refs=refs_needed)
                 for i in range(step * data.batch_size, (step + 1) * data.batch_size)]
        refs = None if not refs_needed or items[0][2] is None else np.stack([r for *_, r in items])
        return sampling.batch(seed, step, np.stack([f for f, _, _ in items]),
                              np.stack([y for _, y, _ in items]), refs, with_boxes)

    return sample


def frame_sampler(source, batch_size: int, sampling: Sampling, *, with_boxes: bool = False,
                  tag: int = 0x0F) -> Callable[[int], Batch]:
    """sample(step) -> `batch_size` single random frames as one-step sequences
    (B, 1, 3, H, W), labels (B, 1) (and boxes (B, 1, 4) with `with_boxes`)."""

    def sample(step: int) -> Batch:
        rng = np.random.default_rng([sampling.seed, tag, step])
        frames, labels, refs = source.random_frames(rng, batch_size)
        return sampling.batch(tag, step, frames[:, None], labels[:, None],
                              None if refs is None else refs[:, None], with_boxes)

    return sample


def truth_boxes(source) -> Boxes:
    """The source's own object boxes (moving digits), looked up by the frames' refs."""
    return lambda frames, labels, refs: source.truth_boxes(refs)
