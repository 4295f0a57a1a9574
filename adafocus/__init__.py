"""AdaFocus for live video: pure-PyTorch models, online inference, training and
evaluation. Imports nothing from `stream`, ZeroMQ or Prometheus.

Public API (see CONTRACTS.md): the config and presets, the AdaFocus module and its
building blocks, the online per-stream API, checkpoints, GFLOPs accounting and skip
calibration.
"""

from adafocus.checkpoint import (
    IMAGENET_NORMALIZATION,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from adafocus.config import AdaFocusConfig, preset
from adafocus.flops import component_gflops
from adafocus.models import AdaFocus, ClipOutput, Focus, PolicyOutput
from adafocus.online import OnlineAdaFocus, StepResult, normalize_frames, resolve_device
from adafocus.skip import SkipThresholds, StreamSignals, calibrate

__all__ = [
    "AdaFocusConfig", "preset", "AdaFocus", "ClipOutput", "Focus", "PolicyOutput",
    "OnlineAdaFocus", "StepResult", "normalize_frames", "resolve_device",
    "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint",
    "IMAGENET_NORMALIZATION", "component_gflops", "SkipThresholds", "StreamSignals",
    "calibrate",
]
