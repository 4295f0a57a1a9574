"""The comparison models of a training run, stored beside its checkpoint.

`NAME.pt` stays a plain AdaFocus checkpoint (what the pipeline loads); the
baselines and the other AdaFocus variant go to `NAME.compare.pt`, so
`adafocus-stream eval` reproduces the whole table from the two files. Same rules
as checkpoints: `torch.load(weights_only=True)`, validated before use. Weights
are stored in float16 (they are only evaluated; it halves the file).

Methods of the table and the weights each one runs:

| method      | weights                               | patch source |
|-------------|---------------------------------------|--------------|
| glance_only | GlanceOnly (f_G + f_C)                | -            |
| full_frame  | FullFrame (f_L on the whole frame)    | -            |
| center      | V1 after stage 1 (random-patch model) | centre       |
| random      | V1 after stage 1 (random-patch model) | random       |
| v1, v2      | the trained AdaFocus variants         | policy       |
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from adafocus.checkpoint import atomic_save
from adafocus.config import AdaFocusConfig, config_from_dict, config_to_dict
from adafocus.flops import baseline_costs, component_gflops
from adafocus.interface import CheckpointError, Costs, resolve_spec
from adafocus.models import AdaFocus
from adafocus.models.baselines import BASELINES, build_baseline
from adafocus.schema import problems
from adafocus.skip import validate_calibration

COMPARE_FORMAT = "adafocus-stream-compare/1"
METHODS: dict[str, tuple[str, str]] = {  # method -> (model name, patch source)
    "glance_only": ("glance_only", "policy"),
    "full_frame": ("full_frame", "policy"),
    "center": ("random_patch", "center"),
    "random": ("random_patch", "random"),
    "v1": ("v1", "policy"),
    "v2": ("v2", "policy"),
}


@dataclass
class Method:
    """One row of the comparison: a model, how it picks patches, its costs,
    its skip calibration and its every-frame validation accuracy."""

    name: str
    model: nn.Module
    patch_source: str
    costs: Costs
    calibration: dict[str, Any] | None
    val_accuracy: float | None = None


def compare_path(checkpoint: str | os.PathLike) -> Path:
    """`x/NAME.pt` (or builtin:NAME) -> `x/NAME.compare.pt`."""
    path = resolve_spec(checkpoint)
    return path.with_name(f"{path.stem}.compare.pt")


def method_costs(model: nn.Module, patch_source: str) -> Costs:
    """Per-frame compute; random/centre patches need no policy step."""
    if not isinstance(model, AdaFocus):
        return baseline_costs(model)
    costs = component_gflops(model.config)
    if patch_source != "policy":
        costs = dataclasses.replace(costs, full_step=costs.full_step - costs.policy, policy=0.0)
    return costs


def model_kind(model: nn.Module) -> str:
    return "adafocus" if isinstance(model, AdaFocus) else model.kind


def save_comparisons(path: str | os.PathLike, models: dict[str, nn.Module],
                     methods: dict[str, dict[str, Any]], main: str) -> Path:
    """models: name -> module; methods: method -> {"calibration", "accuracy"}; `main`
    names the method whose weights are the checkpoint itself (not repeated here)."""
    blob = {
        "format": COMPARE_FORMAT,
        "main": main,
        "models": {
            name: {"kind": model_kind(m), "config": config_to_dict(m.config),
                   "state_dict": {k: (v.half() if v.is_floating_point() else v).cpu()
                                  for k, v in m.state_dict().items()}}
            for name, m in models.items()},
        "methods": {name: {"calibration": info["calibration"],
                           "accuracy": float(info["accuracy"])}
                    for name, info in methods.items()},
    }
    return atomic_save(blob, path)


def load_comparisons(path: str | os.PathLike) -> tuple[str, dict[str, Method]]:
    """(main method name, {method: Method}) from a `.compare.pt` file; CheckpointError
    naming the problem when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no comparison file at {path} (written by adafocus-stream train "
                              "beside the checkpoint)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"{path}: unreadable comparison file ({exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != COMPARE_FORMAT:
        raise CheckpointError(f"{path}: not a comparison file (expected {COMPARE_FORMAT})")
    models: dict[str, nn.Module] = {}
    try:
        for name, entry in blob["models"].items():
            try:
                config = config_from_dict(entry["config"])
            except ValidationError as exc:
                raise ValueError("; ".join(problems(exc, AdaFocusConfig, f"models.{name}.config"))
                                 ) from None
            kind = entry["kind"]
            if kind == "adafocus":
                model: nn.Module = AdaFocus(config)
            elif kind in BASELINES:
                model = build_baseline(kind, config)
            else:
                raise ValueError(f"unknown model kind {kind!r}")
            model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in entry["state_dict"].items()})
            models[name] = model.eval()
        methods = {}
        for method, info in blob["methods"].items():
            model_name, source = METHODS[method]
            if model_name not in models:
                continue
            if info["calibration"] is not None:
                validate_calibration(info["calibration"])
            model = models[model_name]
            methods[method] = Method(method, model, source, method_costs(model, source),
                                     info["calibration"], info["accuracy"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: bad comparison file ({exc})") from None
    return blob["main"], methods
