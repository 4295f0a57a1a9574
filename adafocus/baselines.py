"""Full-frame baselines served like any checkpoint: their file format and their
online runner.

Why: a fair comparison runs the network AdaFocus is measured against through the
very same worker, rings and publisher (the bench does; so can an A/B test on real
cameras). The networks are ``adafocus.models.baselines``; training writes them into
the ``NAME.compare.pt`` beside a checkpoint (``adafocus.train.comparisons``). This
module gives one of them a standalone file, and ``adafocus.loading.load_online``
serves either kind of file, so the worker needs no special case:

    save_baseline(path, FullFrame(config), class_names)      # or from a .compare.pt
    online = load_online(path, device="cuda")                # an OnlineBaseline

File format (``torch.save``, read back with ``weights_only=True``)::

    {"format": "adafocus-stream-baseline/1", "kind": "full_frame" | "glance_only",
     "config": asdict(AdaFocusConfig), "class_names": [str, ...],
     "normalization": {"mean": [3], "std": [3]}, "trained": bool,
     "state_dict": {name: tensor}}

A baseline file has no skip calibration, so it is served with every frame in
full; its costs are counted from the config at load time, like a checkpoint's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION, atomic_save, read_metadata
from adafocus.config import config_to_dict
from adafocus.flops import baseline_costs
from adafocus.interface import CheckpointError, Costs, resolve_spec
from adafocus.metadata import BASELINE_FORMAT, BaselineMetadata
from adafocus.models.baselines import BASELINES, RecurrentBaseline, build_baseline
from adafocus.runtime import Hidden, OnlineRunner
from adafocus.skip import SkipThresholds


def save_baseline(path: str | os.PathLike, model: RecurrentBaseline, class_names: list[str], *,
                  normalization: dict[str, list[float]] | None = None,
                  trained: bool = True) -> Path:
    """Write a baseline module (``adafocus.models.baselines``) atomically; returns the path.

    ``trained=False`` marks random weights (e.g. the ``paper`` preset, for which no
    weights exist): such a file is for throughput only (`load_baseline` returns the flag).
    """
    if not isinstance(model, RecurrentBaseline):
        raise ValueError(f"not a baseline module ({type(model).__name__}); expected one of "
                         f"{tuple(BASELINES)} from adafocus.models.baselines")
    if len(class_names) != model.config.num_classes:
        raise ValueError(f"{len(class_names)} class names for a "
                         f"{model.config.num_classes}-class model")
    data = {
        "format": BASELINE_FORMAT,
        "kind": model.kind,
        "config": config_to_dict(model.config),
        "class_names": list(class_names),
        "normalization": normalization or IMAGENET_NORMALIZATION,
        "trained": bool(trained),
        "state_dict": {k: v.detach().float().cpu().contiguous() if v.is_floating_point()
                       else v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return atomic_save(data, path)


def load_baseline(spec: str | os.PathLike) -> tuple[RecurrentBaseline, dict[str, Any]]:
    """(module in eval mode, metadata without the state dict); CheckpointError naming
    every problem for anything that is not a valid baseline file."""
    path = resolve_spec(spec)
    data = _read(path)
    meta = read_metadata(data, path, BaselineMetadata, BASELINE_FORMAT,
                         "adafocus-stream baseline file")
    model = build_baseline(meta.kind, meta.config)
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:  # names or shapes that do not fit the config
        raise CheckpointError(f"{path}: state_dict does not fit the config: {exc}") from None
    return model.eval(), {k: v for k, v in data.items() if k != "state_dict"}


def is_baseline_file(spec: str | os.PathLike) -> bool:
    """True when ``spec`` names a baseline file (False for checkpoints and unreadable
    files, which the checkpoint loader then reports properly)."""
    try:
        data = _read(resolve_spec(spec))
    except CheckpointError:
        return False
    return isinstance(data, dict) and data.get("format") == BASELINE_FORMAT


def _read(path: Path) -> Any:
    """torch.load with weights_only (mmap: a format check does not read the weights)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"{path}: unreadable model file ({type(exc).__name__})") from None


class OnlineBaseline(OnlineRunner):
    """A baseline on endless streams: per-stream recurrent state, batched steps.

    Every result's ``patch`` is the whole frame (0, 0, 1, 1), which is what these
    networks look at. ``skip`` thresholds (from a calibration of this baseline, as
    evaluation has them) skip frames by the same rule as AdaFocus: the backbone is
    the "glance" whose pooled features must move for the classifier to step.
    """

    def __init__(self, model: RecurrentBaseline, class_names: list[str],
                 normalization: dict[str, list[float]], costs: Costs | None = None, *,
                 device: str | torch.device = "auto", skip: SkipThresholds | None = None,
                 top_k: int = 5, **runtime: Any) -> None:
        """``costs`` None: counted from the model (adafocus.flops.baseline_costs);
        ``runtime``: OnlineRunner's options (amp, cuda_graphs, pad_batches)."""
        super().__init__(model, class_names, normalization,
                         baseline_costs(model) if costs is None else costs, device=device,
                         skip=skip, top_k=top_k, **runtime)

    def _initial_hidden(self) -> Hidden:
        return (self.model.initial_state(1, self._device)[0],)

    def _glance(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        """The backbone on the whole frame; nothing but its pooled features is needed."""
        return None, self.model.features(x)

    def _full(self, x: torch.Tensor, glance: None, pooled: torch.Tensor, hidden: Hidden
              ) -> tuple[torch.Tensor, None, Hidden]:
        logits, classifier_hidden = self.model.classifier_step(pooled, hidden[0])
        return logits, None, (classifier_hidden,)


__all__ = ["OnlineBaseline", "is_baseline_file", "load_baseline", "save_baseline"]
