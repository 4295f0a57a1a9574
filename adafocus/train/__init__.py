"""Training AdaFocus for live streams: baselines (stage 0), V1 (warm-up, PPO policy,
fine-tune), V2 (end to end), all on causal frame sequences, then skip calibration.

`train(load_train_config(path))` is what `adafocus-stream train CONFIG` runs.

`train` and `TrainResult` load on first use (PEP 562): reading or checking a train
config, or a comparison file (adafocus.train.comparisons), must not import every
stage, PPO, the data loaders and tqdm.
"""

from __future__ import annotations

from typing import Any

from adafocus.train.config import (
    TrainConfig,
    TrainConfigError,
    load_train_config,
    parse_train_config,
)
from adafocus.train.state import ResumeError

__all__ = ["TrainConfig", "TrainConfigError", "load_train_config", "parse_train_config",
           "TrainResult", "train", "ResumeError"]


def __getattr__(name: str) -> Any:
    if name not in ("train", "TrainResult"):
        raise AttributeError(f"module 'adafocus.train' has no attribute {name!r}")
    from adafocus.train import runner

    return getattr(runner, name)
