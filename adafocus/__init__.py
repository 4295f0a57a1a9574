"""AdaFocus for live video: pure-PyTorch models, online inference, training and
evaluation. Imports nothing from `stream`, ZeroMQ or Prometheus.

The public names below load lazily (PEP 562): a producer process that only needs
`adafocus.data.moving_digits` to render the synthetic camera must not pay for
importing PyTorch (hundreds of MB of RSS per stream), nor a publisher that only
needs `StepResult` (adafocus.interface, the contract with the service).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # the contract with the service (torch-free)
    "ACTIONS": "adafocus.interface",
    "BUILTIN_PREFIX": "adafocus.interface",
    "CheckpointError": "adafocus.interface",
    "Costs": "adafocus.interface",
    "OnlineModel": "adafocus.interface",
    "SKIP_MODES": "adafocus.interface",
    "StepResult": "adafocus.interface",
    "resolve_spec": "adafocus.interface",
    # serving
    "load_online": "adafocus.loading",
    "OnlineRunner": "adafocus.runtime",
    "normalize_frames": "adafocus.runtime",
    "resolve_device": "adafocus.runtime",
    "FrameResizer": "adafocus.data.resize",
    "OnlineAdaFocus": "adafocus.online",
    "OnlineBaseline": "adafocus.baselines",
    # models, their configuration and files
    "AdaFocusConfig": "adafocus.config",
    "preset": "adafocus.config",
    "AdaFocus": "adafocus.models",
    "ClipOutput": "adafocus.models",
    "Focus": "adafocus.models",
    "FullFrame": "adafocus.models",
    "GlanceOnly": "adafocus.models",
    "PolicyOutput": "adafocus.models",
    "component_gflops": "adafocus.flops",
    "Checkpoint": "adafocus.checkpoint",
    "IMAGENET_NORMALIZATION": "adafocus.checkpoint",
    "load_checkpoint": "adafocus.checkpoint",
    "save_checkpoint": "adafocus.checkpoint",
    # adaptive skipping
    "SkipThresholds": "adafocus.skip",
    "StreamSignals": "adafocus.skip",
    "calibrate": "adafocus.skip",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adafocus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

