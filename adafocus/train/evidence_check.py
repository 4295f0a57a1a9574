"""How close the label-only boxes come to the true object, on an exported moving-digits
folder: the diagnostic behind the README's figure for `boxes.source: evidence`.

The folder has no boxes (a user's has none either), but the scene that rendered it
does: clip k of `adafocus-stream export 'synthetic://digits?split=S&seed=N'` is scene
N + k of split S from its frame 0. This reads the frame stage's network from a
training run's state file, decodes the clips and boxes every frame through training's
own path (adafocus.data.streams.FolderSource, adafocus.train.evidence.EvidenceTable),
and reports the distance of each box centre from the digit's.

    python -m adafocus.train.evidence_check runs/folder-tiny.pt.state/state.pt \\
        runs/digits-folder/train --split train --seed 0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION
from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.data.streams import FolderSource
from adafocus.data.video_folder import VideoFolder
from adafocus.geometry import common_size
from adafocus.train.boxes import box_centres
from adafocus.train.config import BoxWarmupSection, model_config, parse_train_config
from adafocus.train.evidence import EvidenceBoxes, EvidenceTable
from adafocus.train.precision import resolve_precision
from adafocus.train.start import FrameNet


def centre_error(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """L-inf distance (px) between the centres of two box arrays (..., 4)."""
    return np.abs(box_centres(boxes) - box_centres(truth.astype(np.float32))).max(-1)


def check(state_file: str, folder_root: str, split: str, seed: int) -> dict[str, float]:
    """Share of frames whose evidence box centre is within 4/8/12 px of the digit's."""
    state = torch.load(state_file, weights_only=True)
    cfg = parse_train_config(state["config"])
    folder = VideoFolder(folder_root)
    net = FrameNet(model_config(cfg, "v1", {"num_classes": len(folder.class_names)}))
    net.load_state_dict(state["modules"]["frame_net"])
    b: BoxWarmupSection = cfg.boxes
    device = torch.device("cpu")
    boxes = EvidenceBoxes(net.local, net.head, IMAGENET_NORMALIZATION, device,
                          resolve_precision(cfg.precision, device), b.evidence_shifts,
                          b.box_size)
    # decoded and boxed by training's own path, at the size training gives these videos
    h, w = common_size((v.height, v.width) for v in folder.videos)
    source = FolderSource(folder, h, w, cache_mb=float("inf"))
    decoded = source.decoded()
    found = EvidenceTable(boxes, decoded, source.frame_labels()).table
    errors = []
    for (times, _), video_boxes, video in zip(decoded, found, folder.videos, strict=True):
        scene = MovingDigitsScene(seed + int(video.path.stem.split("-")[-1]), h, w, split)
        truth = np.array([scene.digit_box(round(t * scene.fps)) for t in times], np.float32)
        errors.append(centre_error(video_boxes, truth))
    e = np.concatenate(errors)
    return {"frames": int(len(e)), "median_px": float(np.median(e)),
            **{f"within_{d}px": float((e <= d).mean()) for d in (4, 8, 12)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", help="a training run's state file (CHECKPOINT.state/state.pt)")
    parser.add_argument("folder", help="the exported moving-digits folder it trained on")
    parser.add_argument("--split", default="train", help="the export URI's split")
    parser.add_argument("--seed", type=int, default=0, help="the export URI's seed")
    args = parser.parse_args(argv)
    print(json.dumps(check(args.state, args.folder, args.split, args.seed), indent=1))


if __name__ == "__main__":
    main()
