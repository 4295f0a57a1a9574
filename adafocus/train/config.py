"""Training configuration: one YAML file, validated up front.

A typo in a config must fail before minutes of training, with the key path and
the problem in the message ("v1.ppo.clip: must be in (0, 1), got 2.0"), so the
schema is a tree of frozen dataclasses and unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from adafocus.config import AdaFocusConfig, preset
from adafocus.schema import problems


class TrainConfigError(ValueError):
    """A train config that cannot be used; the message names the key and the problem."""


@dataclass(frozen=True)
class ModelSection:
    """Which AdaFocus to build: a preset plus field overrides of AdaFocusConfig."""

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSection:
    """Causal training sequences, sampled like the pipeline sees a stream.

    `source` is "moving_digits" (synthetic scenes; `train_scenes` seeds of the
    train split) or "folder" (a user folder of labelled videos at `root`).
    Each sequence is `seq_len` model steps (adafocus.data.streams); the gap
    between consecutive steps is 1..`max_gap` frames, one per sequence
    (`gap_mode: fixed`) or drawn per step (`random`, like adaptive skipping), so
    the recurrent state learns the rates it will see online; `change_fraction`
    of the sequences cross a label change.
    """

    source: str = "moving_digits"
    root: str | None = None
    train_scenes: int = 1000
    val_scenes: int = 100
    fps: float = 25.0
    seq_len: int = 16
    max_gap: int = 4
    gap_mode: str = "random"
    change_fraction: float = 0.5
    batch_size: int = 32


@dataclass(frozen=True)
class StageSection:
    """One supervised stage: Adam for `steps` batches with cosine decay."""

    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class PPOSection:
    """Stage 2 of AdaFocus V1 (reference values as defaults)."""

    steps: int = 300
    lr: float = 3e-4
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    gamma: float = 0.7
    epochs: int = 1


@dataclass(frozen=True)
class V1Section:
    """AdaFocus V1's three stages (stage 1 also gives the random/centre-patch model)."""

    warmup: StageSection = field(default_factory=StageSection)
    ppo: PPOSection = field(default_factory=PPOSection)
    finetune: StageSection = field(default_factory=lambda: StageSection(lr=3e-4))


@dataclass(frozen=True)
class V2Section:
    """AdaFocusV2 end to end; LR multipliers from the reference."""

    train: StageSection = field(default_factory=StageSection)
    lr_glance: float = 0.5
    lr_policy: float = 0.1
    lr_classifier: float = 5.0


@dataclass(frozen=True)
class PretrainSection:
    """f_L on patches around the digit (moving digits only; steps 0 to skip)."""

    steps: int = 300
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    jitter: int = 8


@dataclass(frozen=True)
class BoxWarmupSection:
    """Supervised warm starts from the scene's digit boxes: a DEPARTURE from both
    papers, which learn where to look from the classification signal alone. From a
    uniform start that signal is too weak for a CPU budget (V1's PPO reward is ~0
    while f_C cannot use patches; V2's crop gradient is noise), so when the source
    knows its boxes (moving digits; user folders do not, so all steps must be 0):

    - `glance_steps`: f_G + a 1x1 conv locator learn which glance cell holds the
      digit (single frames, batch `batch_size`); f_G then starts the glance-only
      baseline, V1 and V2.
    - `steps` (per variant, after V1's random-patch warm-up / before V2's end-to-end
      stage): the policy is fitted to the box (V1: cross-entropy to the grid cell
      whose patch is centred nearest the digit; V2: L1 to that location), while f_L
      and f_C learn from patches at the box (`oracle_fraction` of the steps) mixed
      with the policy's own choices, so f_C learns to rely on f_L.

    The papers' stages (V1 PPO with its reward, V2 end to end) then run on top.
    """

    glance_steps: int = 0
    steps: int = 0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    oracle_fraction: float = 0.5


@dataclass(frozen=True)
class BaselineSection:
    """Comparison networks trained in the same command, for `eval`; also stage 0
    (they initialise f_G and f_L of V1 and V2)."""

    glance: StageSection = field(default_factory=StageSection)
    full: StageSection = field(default_factory=StageSection)


@dataclass(frozen=True)
class CalibrationSection:
    """Skip thresholds fitted per compute budget on `sequences` validation sequences."""

    budgets: tuple[float, ...] = (0.2, 0.3, 0.5)
    sequences: int = 64
    seq_len: int = 64


@dataclass(frozen=True)
class OutputSection:
    """Where the checkpoint goes and how often resumable state is written."""

    checkpoint: str = "runs/adafocus.pt"
    state_dir: str | None = None  # default: <checkpoint>.state/
    save_every: int = 100


@dataclass(frozen=True)
class TrainConfig:
    """Everything `adafocus-stream train` needs; `ship` picks the variant saved as the
    main model ("best" = higher validation accuracy of V1 and V2)."""

    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)
    boxes: BoxWarmupSection = field(default_factory=BoxWarmupSection)
    v1: V1Section = field(default_factory=V1Section)
    v2: V2Section = field(default_factory=V2Section)
    baselines: BaselineSection = field(default_factory=BaselineSection)
    calibration: CalibrationSection = field(default_factory=CalibrationSection)
    output: OutputSection = field(default_factory=OutputSection)
    ship: str = "best"


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML train config; relative output paths stay relative to
    the working directory (the command is run from the repo root)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TrainConfigError(f"{path}: cannot read train config ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return parse_train_config({} if raw is None else raw)
    except TrainConfigError as exc:
        raise TrainConfigError(f"{path}: {exc}") from None


def parse_train_config(raw: Mapping[str, Any]) -> TrainConfig:
    """Build a TrainConfig from plain data, raising TrainConfigError on the first problem."""
    cfg = _build(TrainConfig, raw, "")
    _validate(cfg)
    return cfg


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-data form (tuples as lists) for checkpoint metadata and YAML round trips."""
    def plain(x: Any) -> Any:
        if isinstance(x, tuple | list):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x
    return plain(dataclasses.asdict(cfg))


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise TrainConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise TrainConfigError(f"{key}: unknown key (expected one of {', '.join(sorted(names))})")
    values = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], value, key)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, key)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not value:
            raise TrainConfigError(f"{key}: expected a non-empty list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise TrainConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise TrainConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TrainConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TrainConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TrainConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # schema bug, not user input


def _check(ok: bool, key: str, problem: str, value: Any) -> None:
    if not ok:
        raise TrainConfigError(f"{key}: {problem}, got {value!r}")


def model_config(cfg: TrainConfig, policy: str) -> AdaFocusConfig:
    """The AdaFocusConfig of the run's V1 or V2 model (YAML lists become tuples)."""
    return preset(cfg.model.preset, **{**cfg.model.overrides, "policy": policy})


def _validate(cfg: TrainConfig) -> None:
    try:
        model_config(cfg, "v1")
    except ValidationError as exc:
        raise TrainConfigError("\n".join(problems(exc, AdaFocusConfig, "model.overrides"))
                               ) from None
    except ValueError as exc:  # an unknown preset
        raise TrainConfigError(f"model.preset: {exc}") from None
    d = cfg.data
    _check(d.source in ("moving_digits", "folder"), "data.source",
           "must be moving_digits or folder", d.source)
    _check(d.source != "folder" or bool(d.root), "data.root",
           "is required when data.source is folder", d.root)
    for name in ("train_scenes", "val_scenes", "seq_len", "batch_size"):
        _check(getattr(d, name) >= 1, f"data.{name}", "must be >= 1", getattr(d, name))
    _check(d.fps > 0, "data.fps", "must be > 0", d.fps)
    _check(d.max_gap >= 1, "data.max_gap", "must be >= 1 frame", d.max_gap)
    _check(d.gap_mode in ("fixed", "random"), "data.gap_mode", "must be fixed or random",
           d.gap_mode)
    _check(0 <= d.change_fraction <= 1, "data.change_fraction", "must be in [0, 1]",
           d.change_fraction)
    _check(d.seq_len >= 2, "data.seq_len", "must be >= 2", d.seq_len)
    stages = {"pretrain": cfg.pretrain, "v1.warmup": cfg.v1.warmup, "v1.finetune": cfg.v1.finetune,
              "v2.train": cfg.v2.train, "baselines.glance": cfg.baselines.glance,
              "baselines.full": cfg.baselines.full}
    for key, st in stages.items():
        _check(st.steps >= 0, f"{key}.steps", "must be >= 0", st.steps)
        _check(st.lr > 0, f"{key}.lr", "must be > 0", st.lr)
        _check(st.weight_decay >= 0, f"{key}.weight_decay", "must be >= 0", st.weight_decay)
    _check(cfg.pretrain.batch_size >= 1 and cfg.pretrain.jitter >= 0, "pretrain",
           "needs batch_size >= 1 and jitter >= 0",
           (cfg.pretrain.batch_size, cfg.pretrain.jitter))
    _check(cfg.pretrain.steps == 0 or d.source == "moving_digits", "pretrain.steps",
           "must be 0 unless data.source is moving_digits (only it knows where objects are)",
           cfg.pretrain.steps)
    b = cfg.boxes
    _check(b.glance_steps >= 0 and b.steps >= 0 and b.lr > 0 and b.weight_decay >= 0
           and b.batch_size >= 1, "boxes",
           "needs steps >= 0, lr > 0, weight_decay >= 0, batch_size >= 1",
           (b.glance_steps, b.steps, b.lr, b.weight_decay, b.batch_size))
    _check(0 <= b.oracle_fraction <= 1, "boxes.oracle_fraction", "must be in [0, 1]",
           b.oracle_fraction)
    _check(b.glance_steps + b.steps == 0 or d.source == "moving_digits", "boxes",
           "steps must be 0 unless data.source is moving_digits (only it knows the boxes)",
           (b.glance_steps, b.steps))
    p = cfg.v1.ppo
    _check(p.steps >= 0, "v1.ppo.steps", "must be >= 0", p.steps)
    _check(p.lr > 0, "v1.ppo.lr", "must be > 0", p.lr)
    _check(0 < p.clip < 1, "v1.ppo.clip", "must be in (0, 1)", p.clip)
    _check(0 <= p.gamma <= 1, "v1.ppo.gamma", "must be in [0, 1]", p.gamma)
    _check(p.epochs >= 1, "v1.ppo.epochs", "must be >= 1", p.epochs)
    _check(p.value_coef >= 0 and p.entropy_coef >= 0, "v1.ppo",
           "value_coef and entropy_coef must be >= 0", (p.value_coef, p.entropy_coef))
    for name in ("lr_glance", "lr_policy", "lr_classifier"):
        _check(getattr(cfg.v2, name) > 0, f"v2.{name}", "must be > 0", getattr(cfg.v2, name))
    c = cfg.calibration
    _check(all(0 < b <= 1 for b in c.budgets), "calibration.budgets",
           "every budget must be in (0, 1]", c.budgets)
    _check(c.sequences >= 1 and c.seq_len >= 2, "calibration",
           "needs sequences >= 1 and seq_len >= 2", (c.sequences, c.seq_len))
    _check(cfg.output.save_every >= 1, "output.save_every", "must be >= 1", cfg.output.save_every)
    _check(bool(cfg.output.checkpoint), "output.checkpoint", "must be a path", "")
    _check(cfg.ship in ("best", "v1", "v2"), "ship", "must be best, v1 or v2", cfg.ship)
