"""Training configuration: one YAML file, validated up front.

A typo in a config must fail before minutes of training, with the key path and
the problem in the message ("v1.ppo.clip: must be < 1, got 2.0"), so the schema
is a tree of frozen Schema models (adafocus.schema): unknown keys are errors,
scalars are strict, and every problem of a file is reported at once, relations
between keys included (each at its own key). A section left bare in YAML
(``pretrain:``) takes its defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from adafocus.config import PRESET_NAMES, AdaFocusConfig, preset
from adafocus.schema import LISTS_OK, Schema, causes, located, problems

Count = Annotated[int, Field(ge=1)]
Steps = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0)]
Decay = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class TrainConfigError(ValueError):
    """A train config that cannot be used; the message names each key and its problem."""


class Section(Schema):
    """A section of the train config; a bare key (YAML null) means all defaults."""

    @model_validator(mode="before")
    @classmethod
    def _bare_key_takes_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


class ModelSection(Section):
    """Which AdaFocus to build: a preset plus field overrides of AdaFocusConfig."""

    preset: Literal[PRESET_NAMES] = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _builds_a_model(self) -> ModelSection:
        """The overrides must make a valid AdaFocusConfig (each problem at its key)."""
        try:
            preset(self.preset, **{**self.overrides, "policy": "v1"})
        except ValidationError as exc:
            raise located("ModelSection", [(("overrides", *loc), message)
                                           for loc, message in causes(exc, AdaFocusConfig)]
                          ) from None
        return self


class DataSection(Section):
    """Causal training sequences, sampled like the pipeline sees a stream.

    `source` is "moving_digits" (synthetic scenes; `train_scenes` seeds of the
    train split) or "folder" (a user folder of labelled videos at `root`).
    Each sequence is `seq_len` model steps (adafocus.data.streams); the gap
    between consecutive steps is 1..`max_gap` frames, one per sequence
    (`gap_mode: fixed`) or drawn per step (`random`, like adaptive skipping), so
    the recurrent state learns the rates it will see online; `change_fraction`
    of the sequences cross a label change.
    """

    source: Literal["moving_digits", "folder"] = "moving_digits"
    root: str | None = None
    train_scenes: Count = 1000
    val_scenes: Count = 100
    fps: Rate = 25.0
    seq_len: Annotated[int, Field(ge=2)] = 16
    max_gap: Count = 4
    gap_mode: Literal["fixed", "random"] = "random"
    change_fraction: Fraction = 0.5
    batch_size: Count = 32

    @model_validator(mode="after")
    def _folder_needs_a_root(self) -> DataSection:
        if self.source == "folder" and not self.root:
            raise located("DataSection", [(("root",), "is required when data.source is folder")])
        return self


class StageSection(Section):
    """One supervised stage: Adam for `steps` batches with cosine decay."""

    steps: Steps = 300
    lr: Rate = 1e-3
    weight_decay: Decay = 1e-4


class PPOSection(Section):
    """Stage 2 of AdaFocus V1 (reference values as defaults)."""

    steps: Steps = 300
    lr: Rate = 3e-4
    clip: Annotated[float, Field(gt=0, lt=1)] = 0.2
    value_coef: Decay = 0.5
    entropy_coef: Decay = 0.01
    gamma: Fraction = 0.7
    epochs: Count = 1


class V1Section(Section):
    """AdaFocus V1's three stages (stage 1 also gives the random/centre-patch model)."""

    warmup: StageSection = Field(default_factory=StageSection)
    ppo: PPOSection = Field(default_factory=PPOSection)
    finetune: StageSection = Field(default_factory=lambda: StageSection(lr=3e-4))


class V2Section(Section):
    """AdaFocusV2 end to end; LR multipliers from the reference."""

    train: StageSection = Field(default_factory=StageSection)
    lr_glance: Rate = 0.5
    lr_policy: Rate = 0.1
    lr_classifier: Rate = 5.0


class PretrainSection(Section):
    """f_L on patches around the digit (moving digits only; steps 0 to skip)."""

    steps: Steps = 300
    lr: Rate = 2e-3
    weight_decay: Decay = 1e-4
    batch_size: Count = 64
    jitter: Steps = 8


class BoxWarmupSection(Section):
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

    glance_steps: Steps = 0
    steps: Steps = 0
    lr: Rate = 1e-3
    weight_decay: Decay = 1e-4
    batch_size: Count = 64
    oracle_fraction: Fraction = 0.5


class BaselineSection(Section):
    """Comparison networks trained in the same command, for `eval`; also stage 0
    (they initialise f_G and f_L of V1 and V2)."""

    glance: StageSection = Field(default_factory=StageSection)
    full: StageSection = Field(default_factory=StageSection)


class CalibrationSection(Section):
    """Skip thresholds fitted per compute budget on `sequences` validation sequences."""

    budgets: Annotated[tuple[Annotated[float, Field(gt=0, le=1)], ...], LISTS_OK,
                       Field(min_length=1)] = (0.2, 0.3, 0.5)
    sequences: Count = 64
    seq_len: Annotated[int, Field(ge=2)] = 64


class OutputSection(Section):
    """Where the checkpoint goes and how often resumable state is written."""

    checkpoint: Annotated[str, Field(min_length=1)] = "runs/adafocus.pt"
    state_dir: str | None = None  # default: <checkpoint>.state/
    save_every: Count = 100


class TrainConfig(Schema):
    """Everything `adafocus-stream train` needs; `ship` picks the variant saved as the
    main model ("best" = higher validation accuracy of V1 and V2)."""

    seed: int = 0
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    pretrain: PretrainSection = Field(default_factory=PretrainSection)
    boxes: BoxWarmupSection = Field(default_factory=BoxWarmupSection)
    v1: V1Section = Field(default_factory=V1Section)
    v2: V2Section = Field(default_factory=V2Section)
    baselines: BaselineSection = Field(default_factory=BaselineSection)
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    output: OutputSection = Field(default_factory=OutputSection)
    ship: Literal["best", "v1", "v2"] = "best"

    @field_validator("pretrain")
    @classmethod
    def _pretrain_needs_object_boxes(cls, pretrain: PretrainSection, info: ValidationInfo
                                     ) -> PretrainSection:
        if pretrain.steps and not _knows_boxes(info):
            raise located("TrainConfig", [(("steps",), "must be 0 unless data.source is "
                                           "moving_digits (only it knows where objects are)")])
        return pretrain

    @field_validator("boxes")
    @classmethod
    def _box_warmups_need_boxes(cls, boxes: BoxWarmupSection, info: ValidationInfo
                                ) -> BoxWarmupSection:
        found = [((key,), "must be 0 unless data.source is moving_digits (only it knows "
                          "the boxes)")
                 for key in ("glance_steps", "steps") if getattr(boxes, key)]
        if found and not _knows_boxes(info):
            raise located("TrainConfig", found)
        return boxes


def _knows_boxes(info: ValidationInfo) -> bool:
    """Whether the data source knows object boxes; True when data.source is itself
    invalid (that problem is reported at its own key)."""
    data = info.data.get("data")
    return data is None or data.source == "moving_digits"




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
    """Build a TrainConfig from plain data, raising TrainConfigError naming every
    problem at its key."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise TrainConfigError("; ".join(problems(exc, TrainConfig))) from None


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-data form (tuples as lists) for checkpoint metadata and YAML round trips."""
    def plain(x: Any) -> Any:
        if isinstance(x, tuple | list):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x
    return plain(cfg.model_dump())


def model_config(cfg: TrainConfig, policy: str) -> AdaFocusConfig:
    """The AdaFocusConfig of the run's V1 or V2 model."""
    return preset(cfg.model.preset, **{**cfg.model.overrides, "policy": policy})
