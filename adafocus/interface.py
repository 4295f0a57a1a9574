"""The contract between the model library and the service that runs it.

The service (``stream/``) knows a model only through this module: it loads one with
``adafocus.loading.load_online``, drives it as an :class:`OnlineModel`, publishes
the fields of each :class:`StepResult` (README.md "Contracts: result messages") and checks
its configuration against :data:`SKIP_MODES` and :func:`resolve_spec` before any
model is loaded. So everything a server and the library must agree on is written
once, here.

Nothing here imports PyTorch: the publisher and the config loader use these names
without paying for it (hundreds of MB per process).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Action = Literal["skip", "glance", "full"]
#: What a model did with one frame: "skip" (nothing ran, the label is carried
#: over), "glance" (only the cheap glance network ran) or "full".
ACTIONS: tuple[Action, ...] = ("skip", "glance", "full")

#: The skip modes a server may ask for: "off" runs every frame in full,
#: "confidence" skips by the checkpoint's calibrated thresholds.
SKIP_MODES = ("off", "confidence")

BUILTIN_PREFIX = "builtin:"
#: ``builtin:NAME`` names ``NAME.pt`` in this folder, shipped inside the package.
BUILTIN_DIR = Path(__file__).resolve().parent / "checkpoints"


class CheckpointError(ValueError):
    """A model file that cannot be used: missing, truncated, foreign or mismatched."""


@dataclass(frozen=True)
class StepResult:
    """The running label of one stream after one frame (README.md "Contracts: result messages").

    ``action`` is one of :data:`ACTIONS`; ``skipped`` is true for both carried-over
    actions ("skip", "glance"), whose ``patch`` is None. ``patch`` is the normalised
    (x0, y0, x1, y1) box the model looked at in full resolution. ``gflops`` is what
    this frame actually cost, ``gflops_full`` what the high-capacity network on the
    whole frame would have cost (GFLOPs = GMACs, see adafocus.flops).
    """

    class_id: int
    label: str
    score: float
    topk: list[tuple[str, float]]
    patch: tuple[float, float, float, float] | None
    skipped: bool
    action: Action
    gflops: float
    gflops_full: float


@dataclass(frozen=True)
class Costs:
    """GFLOPs (GMACs, see adafocus.flops) per frame of each part of a model.

    Checkpoints store it as a plain dict under "gflops" (README.md "Contracts:
    checkpoints"); :meth:`from_dict` and :meth:`as_dict` convert.
    """

    skip_signal: float
    """The pixel-change signal of adaptive skipping: one add per input byte."""
    glance: float
    """The glance network f_G on the downsampled frame (a glance-only step)."""
    policy: float
    """One step of the patch policy (0 where the patch is not chosen by a policy)."""
    local: float
    """The local network f_L on one patch."""
    classifier: float
    """One step of the recurrent classifier f_C."""
    full_step: float
    """One fully processed frame: glance + policy + local + classifier."""
    local_full: float
    """f_L on the whole frame: the full-frame network every result is compared with
    (``StepResult.gflops_full``)."""

    @classmethod
    def from_dict(cls, table: Mapping[str, float]) -> Costs:
        """From the plain dict a checkpoint stores (already validated)."""
        return cls(**table)

    def as_dict(self) -> dict[str, float]:
        """The plain dict a checkpoint stores, in :data:`COMPONENTS` order."""
        return asdict(self)


#: The names of the cost components, the keys of a checkpoint's "gflops".
COMPONENTS = tuple(f.name for f in fields(Costs))


@runtime_checkable
class OnlineModel(Protocol):
    """A model that follows many endless streams, one batched frame at a time.

    Each stream's recurrent state lives inside the model, keyed by its id: a stream
    starts on its first step and is forgotten by :meth:`drop`. A stream's results
    never depend on which other streams share its batch.
    """

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames :meth:`step` takes."""

    @property
    def class_names(self) -> list[str]:
        """The labels, indexed by ``StepResult.class_id``."""

    @property
    def costs(self) -> Costs:
        """What each part of the model costs per frame."""

    @property
    def device(self) -> str:
        """Where the model runs, e.g. "cpu" or "cuda:0"."""

    def step(self, frames: Any, stream_ids: Sequence[Hashable]) -> list[StepResult]:
        """Advance each stream by one frame: ``frames`` uint8 RGB (B, H, W, 3), row i
        belonging to ``stream_ids[i]`` (each id at most once). One result per row."""

    def reset(self, stream_id: Hashable) -> None:
        """Forget a stream's history (a reconnect): its next step starts fresh."""

    def drop(self, stream_id: Hashable) -> None:
        """Release a stream that left."""


def check_skip_mode(mode: str | None) -> None:
    """Raise ValueError unless ``mode`` is None (the model's default) or one of
    :data:`SKIP_MODES`, saying why "learned" is refused."""
    if mode is None or mode in SKIP_MODES:
        return
    if mode == "learned":
        raise ValueError("skip mode 'learned' needs a learned skip head; this version of "
                         "the model has none (use 'confidence')")
    raise ValueError(f"skip mode must be one of {', '.join(SKIP_MODES)}, got {mode!r}")


def builtin_names() -> list[str]:
    """The names ``builtin:NAME`` can take, sorted."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.pt") if "." not in p.stem)


def resolve_spec(spec: str | os.PathLike) -> Path:
    """A model file's path, or ``builtin:NAME`` -> the package's ``NAME.pt``.

    Raises CheckpointError naming what is missing (and the builtin names there are).
    """
    text = os.fspath(spec)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        path = BUILTIN_DIR / f"{name}.pt"
        if not name or "/" in name or not path.is_file():
            known = ", ".join(builtin_names()) or "none"
            raise CheckpointError(f"no builtin checkpoint {name!r}; available: {known}")
        return path
    path = Path(text)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    return path


__all__ = ["ACTIONS", "Action", "BUILTIN_DIR", "BUILTIN_PREFIX", "COMPONENTS",
           "CheckpointError", "Costs", "OnlineModel", "SKIP_MODES", "StepResult",
           "builtin_names", "check_skip_mode", "resolve_spec"]
