"""Small labelled folders and the tiny training runs the folder-path tests share:
moving-digits (or pattern) scenes exported as H.264 clips + labels.csv, exactly as
`adafocus-stream export` writes them, and a train config of a few steps on one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
