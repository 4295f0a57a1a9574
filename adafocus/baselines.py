"""Full-frame baselines as model files the pipeline serves like any checkpoint.

Why: a fair comparison runs the network AdaFocus is measured against through the
very same worker, rings and publisher (the bench does; so can an A/B test on real
cameras). The baselines are built and trained elsewhere
(``adafocus.train.baselines``: AdaFocus-shaped modules that ``OnlineAdaFocus``
already drives; ``adafocus.train.comparisons``: the ``NAME.compare.pt`` file that
holds them beside a trained checkpoint). This module only gives one of them a
standalone file, and gives servers one loader for both kinds of file, so the
worker needs no special case:

    save_baseline(path, FullFrame(config), class_names)      # or from a .compare.pt
    online = load_online(path_or_checkpoint, device="cuda")  # OnlineAdaFocus either way

File format (``torch.save``, read back with ``weights_only=True``)::

    {"format": "adafocus-stream-baseline/1", "kind": "full_frame" | "glance_only",
     "config": asdict(AdaFocusConfig), "class_names": [str, ...],
     "normalization": {"mean": [3], "std": [3]}, "trained": bool,
     "state_dict": {name: tensor}}

A baseline runs every frame in full (it has no skip calibration); its GFLOPs table
is counted from the config at load time, like a checkpoint's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adafocus.checkpoint import IMAGENET_NORMALIZATION, atomic_save
from adafocus.config import config_from_dict, config_to_dict
from adafocus.interface import CheckpointError, resolve_spec
from adafocus.online import OnlineAdaFocus
from adafocus.train.baselines import BASELINE_KINDS, build_baseline

BASELINE_FORMAT = "adafocus-stream-baseline/1"
_KEYS = {"format", "kind", "config", "class_names", "normalization", "trained", "state_dict"}


def save_baseline(path: str | os.PathLike, model: nn.Module, class_names: list[str], *,
                  normalization: dict[str, list[float]] | None = None,
                  trained: bool = True) -> Path:
    """Write a baseline module (``adafocus.train.baselines``) atomically; returns the path.

    ``trained=False`` marks random weights (e.g. the ``paper`` preset, for which no
    weights exist): such a file is for throughput only (`load_baseline` returns the flag).
    """
    kind = getattr(model, "kind", None)
    if kind not in BASELINE_KINDS:
        raise ValueError(f"not a baseline module ({type(model).__name__}); expected one of "
                         f"{BASELINE_KINDS} from adafocus.train.baselines")
    if len(class_names) != model.config.num_classes:
        raise ValueError(f"{len(class_names)} class names for a "
                         f"{model.config.num_classes}-class model")
    data = {
        "format": BASELINE_FORMAT,
        "kind": kind,
        "config": config_to_dict(model.config),
        "class_names": list(class_names),
        "normalization": normalization or IMAGENET_NORMALIZATION,
        "trained": bool(trained),
        "state_dict": {k: v.detach().float().cpu().contiguous() if v.is_floating_point()
                       else v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return atomic_save(data, path)


def load_baseline(spec: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """(module in eval mode, metadata without the state dict); CheckpointError naming
    the problem for anything that is not a valid baseline file."""
    path = resolve_spec(spec)
    data = _read(path)
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise CheckpointError(f"{path}: not a baseline file (expected format "
                              f"{BASELINE_FORMAT!r})")
    if set(data) != _KEYS:
        raise CheckpointError(f"{path}: baseline keys do not match the format: missing "
                              f"{sorted(_KEYS - set(data))}, unknown {sorted(set(data) - _KEYS)}")
    try:
        config = config_from_dict(data["config"])
        model = build_baseline(data["kind"], config)
        model.load_state_dict(data["state_dict"])
    except (ValueError, RuntimeError) as exc:  # bad config / kind / shapes
        raise CheckpointError(f"{path}: bad baseline file: {exc}") from None
    names = data["class_names"]
    if not (isinstance(names, list) and len(names) == config.num_classes
            and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path}: class_names must be {config.num_classes} strings")
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return model.eval(), meta


def is_baseline_file(spec: str | os.PathLike) -> bool:
    """True when ``spec`` names a baseline file (False for checkpoints and unreadable
    files, which the checkpoint loader then reports properly)."""
    try:
        data = _read(resolve_spec(spec))
    except CheckpointError:
        return False
    return isinstance(data, dict) and data.get("format") == BASELINE_FORMAT


def load_online(spec: str | os.PathLike, device: str | torch.device = "auto",
                skip_mode: str | None = None, budget: float | None = None,
                top_k: int = 5) -> OnlineAdaFocus:
    """The model a server runs: an AdaFocus checkpoint through
    ``OnlineAdaFocus.from_checkpoint`` (same arguments), or a baseline file, which
    runs every frame in full (``skip_mode`` must be None or "off")."""
    if not is_baseline_file(spec):
        return OnlineAdaFocus.from_checkpoint(spec, device=device, skip_mode=skip_mode,
                                              budget=budget, top_k=top_k)
    if skip_mode not in (None, "off"):
        raise ValueError(f"{spec}: a full-frame baseline runs every frame; adaptive skipping "
                         f"({skip_mode!r}) needs an AdaFocus checkpoint (set skip mode 'off')")
    model, meta = load_baseline(spec)
    return OnlineAdaFocus(model, meta["class_names"], meta["normalization"], model.gflops(),
                          device=device, skip=None, top_k=top_k)


def _read(path: Path) -> Any:
    """torch.load with weights_only (mmap: a format check does not read the weights)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"{path}: unreadable model file ({type(exc).__name__})") from None


__all__ = ["BASELINE_FORMAT", "save_baseline", "load_baseline", "is_baseline_file",
           "load_online"]
