"""Training AdaFocus for live streams: baselines (stage 0), V1 (warm-up, PPO policy,
fine-tune), V2 (end to end), all on causal frame sequences, then skip calibration.

`train(load_train_config(path))` is what `adafocus-stream train CONFIG` runs.
"""

from adafocus.train.config import (
    TrainConfig,
    TrainConfigError,
    load_train_config,
    parse_train_config,
)
from adafocus.train.runner import TrainResult, train
from adafocus.train.state import ResumeError

__all__ = ["TrainConfig", "TrainConfigError", "load_train_config", "parse_train_config",
           "TrainResult", "train", "ResumeError"]
