"""Checkpoint files (README.md "Contracts: checkpoints"): one torch.save'd dict of tensors
and plain data, loaded with ``weights_only=True`` so nothing but plain data is ever
unpickled, and validated (adafocus.metadata, every problem at its key) before a
model is built::

    {"format": "adafocus-stream/1", "config": asdict(AdaFocusConfig),
     "class_names": [str, ...], "normalization": {"mean": [3 floats], "std": [3 floats]},
     "gflops": {component: GFLOPs (GMACs), ...}, "skip_calibration": dict | None,
     "training": dict (plain-data summary), "state_dict": {name: tensor}}

``builtin:NAME`` names adafocus/checkpoints/NAME.pt inside the package
(adafocus.interface.resolve_spec).
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from adafocus.config import AdaFocusConfig, config_to_dict
from adafocus.flops import component_gflops
from adafocus.interface import CheckpointError, Costs, resolve_spec
from adafocus.metadata import CHECKPOINT_FORMAT, CheckpointMetadata, ModelFile
from adafocus.models import AdaFocus
from adafocus.schema import problems

IMAGENET_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass
class Checkpoint:
    """A validated checkpoint. ``build_model()`` returns the AdaFocus with its weights."""

    path: Path
    config: AdaFocusConfig
    class_names: list[str]
    normalization: dict[str, list[float]]
    costs: Costs
    skip_calibration: dict[str, Any] | None
    training: dict[str, Any]
    state_dict: dict[str, torch.Tensor]

    def build_model(self) -> AdaFocus:
        model = AdaFocus(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(path: str | os.PathLike, model: AdaFocus, class_names: list[str], *,
                    normalization: dict[str, list[float]] | None = None,
                    skip_calibration: dict[str, Any] | None = None,
                    training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` with its metadata atomically (temp file + rename), so a crash
    mid-write never leaves a truncated file under the final name. GFLOPs are counted
    from the config here. Returns the path."""
    data = {
        "format": CHECKPOINT_FORMAT,
        "config": config_to_dict(model.config),
        "class_names": list(class_names),
        "normalization": normalization or IMAGENET_NORMALIZATION,
        "gflops": component_gflops(model.config).as_dict(),
        "skip_calibration": skip_calibration,
        "training": training or {},
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    _validate(data, Path(path))  # refuse to write what we could not load
    return atomic_save(data, path)


def atomic_save(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """`torch.save` to a temporary file beside `path`, then rename: a reader (a
    pipeline starting, a resumed training) never sees a half-written model file.
    World-readable like any package data (mkstemp would leave it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(spec: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    num_classes: int | None = None,
                    frame_size: tuple[int, int] | None = None,
                    recount_costs: bool = True) -> Checkpoint:
    """Load and validate a checkpoint; raise CheckpointError naming the problem.

    ``num_classes`` / ``frame_size``, when given, are what the caller needs; a
    checkpoint for another class count or frame size is refused.
    ``recount_costs=False`` trusts the stored GFLOPs (counted when the file was
    saved) instead of counting them again from the config: counting imports sympy
    and torch._dynamo, about 200 MB that a serving process would keep for life.
    """
    path = resolve_spec(spec)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).splitlines()
        if lines and lines[0].startswith("Weights only load failed"):
            detail = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0])
            raise CheckpointError(
                f"{path}: contains Python objects other than tensors and plain data; refusing "
                f"to unpickle them (weights_only): {detail.strip()}") from None
        raise CheckpointError(f"{path}: truncated or not a torch checkpoint "
                              f"({type(exc).__name__}: {lines[0] if lines else ''})") from None
    except Exception as exc:  # torch.load fails in many ways on arbitrary bytes
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path}: truncated or not a torch checkpoint "
                              f"({type(exc).__name__}: {first})") from None
    checkpoint = _validate(data, path, recount_costs)
    if num_classes is not None and checkpoint.config.num_classes != num_classes:
        raise CheckpointError(f"{path}: class-count mismatch: checkpoint has "
                              f"{checkpoint.config.num_classes} classes, expected {num_classes}")
    if frame_size is not None and tuple(checkpoint.config.frame_size) != tuple(frame_size):
        raise CheckpointError(f"{path}: input-size mismatch: checkpoint expects frames "
                              f"{checkpoint.config.frame_size}, got {tuple(frame_size)}")
    return checkpoint


def read_metadata(data: Any, path: Path, schema: type[ModelFile], expected: str, kind: str
                  ) -> ModelFile:
    """Validate a model file's plain data (everything but "state_dict") with
    ``schema``; CheckpointError naming every problem at its key. A dict of another
    format than ``expected`` is refused as foreign first, so that it does not read
    as a list of missing keys."""
    if not isinstance(data, dict) or data.get("format") != expected:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: not an {kind} (format {found!r}, expected {expected!r})")
    lines = [] if "state_dict" in data else ["state_dict: required key is missing"]
    try:
        metadata = schema.model_validate({k: v for k, v in data.items() if k != "state_dict"})
    except ValidationError as exc:
        lines = problems(exc, schema) + lines
    if lines:
        raise CheckpointError(f"{path}: " + "; ".join(lines))
    state = data["state_dict"]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: state_dict must map str to tensors")
    return metadata


def _validate(data: Any, path: Path, recount_costs: bool = True) -> Checkpoint:
    def fail(problem: str) -> None:
        raise CheckpointError(f"{path}: {problem}")

    meta = read_metadata(data, path, CheckpointMetadata, CHECKPOINT_FORMAT,
                         "adafocus-stream checkpoint")
    counted = component_gflops(meta.config).as_dict() if recount_costs else data["gflops"]
    mismatched = [f"gflops.{name}: {data['gflops'][name]} does not match the config "
                  f"({value:.6g})" for name, value in counted.items()
                  if not math.isclose(data["gflops"][name], value, rel_tol=0.01, abs_tol=1e-9)]
    if mismatched:
        fail("; ".join(mismatched))
    _check_state_shapes(data["state_dict"], meta.config, fail)
    return Checkpoint(path, meta.config, list(meta.class_names), data["normalization"],
                      Costs.from_dict(data["gflops"]), data["skip_calibration"],
                      data["training"], data["state_dict"])


def _check_state_shapes(state: dict[str, torch.Tensor], config: AdaFocusConfig, fail) -> None:
    """Compare against a meta-device model of the config: names, shapes, dtypes."""
    with torch.device("meta"):
        expected = AdaFocus(config).state_dict()
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        fail(f"state_dict does not fit the config: missing {missing[:5]}"
             f"{'...' if len(missing) > 5 else ''}, unexpected {unknown[:5]}"
             f"{'...' if len(unknown) > 5 else ''}")
    for name, want in expected.items():
        got = state[name]
        if got.shape != want.shape:
            hint = ""
            if name.endswith(("head.weight", "head.bias")) and "policy" not in name:
                hint = (f"class-count mismatch: weights have {got.shape[0]} classes, config "
                        f"has {config.num_classes}; ")
            elif name.startswith("policy.embed"):
                hint = ("input-size mismatch: the policy was trained on another glance map "
                        f"size than config.glance_size {config.glance_size} gives; ")
            elif name.startswith("policy.actor"):
                hint = f"policy grid mismatch (config.policy_grid {config.policy_grid}); "
            fail(f"{hint}state_dict[{name!r}] has shape {tuple(got.shape)}, "
                 f"the config needs {tuple(want.shape)}")
        if got.dtype != want.dtype:
            fail(f"state_dict[{name!r}] has dtype {got.dtype}, expected {want.dtype}")
