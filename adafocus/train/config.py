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
from adafocus.interface import CheckpointError, resolve_spec
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
    """Which AdaFocus to build and what it starts from.

    A preset plus field overrides of AdaFocusConfig. What the data decides is not
    written here unless wanted: the class count always follows the data, and with a
    folder the frame size follows its videos (adafocus.train.data) unless
    `overrides.frame_size` is set (then videos of another shape are letterboxed).

    Starting weights (nothing is ever downloaded): `init`, a checkpoint (path or
    builtin:NAME) whose tensors start every model of the run, its heads re-initialised
    when its classes differ (adafocus.train.start); `glance_weights` / `local_weights`,
    torchvision state-dict files of MobileNetV2 / ResNet-50 for the `paper` backbones
    (adafocus.models.pretrained). Relative paths are from the working directory.
    """

    preset: Literal[PRESET_NAMES] = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)
    init: Annotated[str, Field(min_length=1)] | None = None
    glance_weights: Annotated[str, Field(min_length=1)] | None = None
    local_weights: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("init")
    @classmethod
    def _init_exists(cls, spec: str | None) -> str | None:
        if spec is not None:
            try:
                resolve_spec(spec)
            except CheckpointError as exc:
                raise ValueError(str(exc)) from None
        return spec

    @field_validator("glance_weights", "local_weights")
    @classmethod
    def _weights_exist(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"no file at {path}")
        return path

    @model_validator(mode="after")
    def _builds_a_model(self) -> ModelSection:
        """The overrides must make a valid AdaFocusConfig, and torchvision weights need
        its torchvision backbones (each problem at its key)."""
        try:
            config = preset(self.preset, **{**self.overrides, "policy": "v1"})
        except ValidationError as exc:
            raise located("ModelSection", [(("overrides", *loc), message)
                                           for loc, message in causes(exc, AdaFocusConfig)]
                          ) from None
        found = [((key,), f"torchvision weights need {arch_key} {arch} (the paper preset), "
                          f"not {getattr(config, arch_key)}")
                 for key, arch_key, arch in (("glance_weights", "glance_arch", "mobilenet_v2"),
                                             ("local_weights", "local_arch", "resnet50"))
                 if getattr(self, key) is not None and getattr(config, arch_key) != arch]
        if found:
            raise located("ModelSection", found)
        return self


class AugmentSection(Section):
    """Per-sequence augmentation of training batches (adafocus.train.augment): a random
    translation of up to `shift` px (border pixels repeated; boxes move along) and a
    colour jitter (per-channel gain 1 +- `colour`, offset +- `colour` in normalised
    units, the channels permuted for half the sequences). 0 turns either off."""

    shift: Steps = 0
    colour: Annotated[float, Field(ge=0, le=1)] = 0.0


class DataSection(Section):
    """Causal training sequences, sampled like the pipeline sees a stream.

    `source` is "moving_digits" (synthetic scenes; `train_scenes` seeds of the
    train split, validated on `val_scenes` of the val split) or "folder" (a user
    folder of labelled videos at `root`, adafocus.data.video_folder). A folder is
    validated on `val_root` (another labelled folder) when given, else on
    `val_fraction` of its clips held out by clip, never by frame (stratified by each
    clip's main label, drawn from `seed`): model selection, skip calibration and
    every validation figure come from clips training never saw.
    A folder's training clips are decoded once into memory when they fit in
    `cache_mb` MB (decoded size; 200 clips of 4 s at 128x128 take about 1 GB), else
    decoded sequence by sequence (several times slower, and the label-only boxes are
    then derived batch by batch). `augment` applies to every training batch.
    Each sequence is `seq_len` model steps (adafocus.data.streams); the gap
    between consecutive steps is 1..`max_gap` frames, one per sequence
    (`gap_mode: fixed`) or drawn per step (`random`, like adaptive skipping), so
    the recurrent state learns the rates it will see online; `change_fraction`
    of the sequences cross a label change.
    """

    source: Literal["moving_digits", "folder"] = "moving_digits"
    root: str | None = None
    val_root: str | None = None
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    train_scenes: Count = 1000
    val_scenes: Count = 100
    fps: Rate = 25.0
    seq_len: Annotated[int, Field(ge=2)] = 16
    max_gap: Count = 4
    gap_mode: Literal["fixed", "random"] = "random"
    change_fraction: Fraction = 0.5
    batch_size: Count = 32
    augment: AugmentSection = Field(default_factory=AugmentSection)
    cache_mb: Annotated[float, Field(ge=0)] = 4096.0

    @field_validator("root", "val_root")
    @classmethod
    def _is_a_labelled_folder(cls, root: str | None, info: ValidationInfo) -> str | None:
        """Checked for a folder source only (and beside any other problem of the file)."""
        if root is not None and info.data.get("source") == "folder":
            problem = _labelled_folder_problem(root)
            if problem:
                raise ValueError(problem)
        return root

    @model_validator(mode="after")
    def _relations(self) -> DataSection:
        found: list[tuple[tuple[str, ...], str]] = []
        if self.source == "folder":
            if not self.root:
                found.append((("root",), "is required when data.source is folder"))
            if self.val_root is None and self.val_fraction == 0:
                found.append((("val_fraction",), "must be > 0 without data.val_root: "
                                                 "validating on training clips would pick "
                                                 "the model that memorised them best"))
        elif self.val_root is not None:
            found.append((("val_root",), "is for data.source folder; moving_digits "
                                         "validates on its own val split"))
        if found:
            raise located("DataSection", found)
        return self


def _labelled_folder_problem(root: str) -> str | None:
    """Why `root` is not a labelled folder (None when it is)."""
    if not Path(root).is_dir():
        return f"no folder at {root}"
    if not (Path(root) / "labels.csv").is_file():
        return f"no labels.csv in {root} (see adafocus.data.video_folder for the layout)"
    return None


class StageSection(Section):
    """One supervised stage: Adam for `steps` batches with cosine decay."""

    steps: Steps = 300
    lr: Rate = 1e-3
    weight_decay: Decay = 1e-4


class FrameSection(StageSection):
    """f_L as a frame classifier on whole frames (global max pooling, a linear head),
    from the clip labels alone: the papers' stage 0, with no ImageNet weights to start
    from. It starts the full-frame baseline and f_L, and its class-evidence map gives
    the label-only boxes (adafocus.train.boxes). Single augmented frames,
    `batch_size` a step; 0 steps skips it."""

    steps: Steps = 0
    lr: Rate = 2e-3
    batch_size: Count = 32


class FullBaselineSection(StageSection):
    """The full-frame baseline: f_L on the whole frame + f_C on sequences. `backbone_lr`
    multiplies the LR of f_L (0: f_L frozen as the frame stage left it, only f_C
    learns; each step then costs a forward pass of f_L instead of a training step)."""

    backbone_lr: Decay = 1.0


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
    """AdaFocus V1's three stages (stage 1 also gives the random/centre-patch model).

    `start`: what V1 (and V2) continue from. `warmup` (the papers): V1's own stage 1,
    f_L + f_C on random patches. `pretrain` (the label-only recipe): the networks as
    the frame and box stages left them; the warm-up then trains only the random/centre
    patch baseline, since random patches mostly miss a small object and so teach f_L
    and f_C to answer without it. `local_aux`: weight of a cross-entropy on f_L's own
    head in stages 1 and 3 (V2 always has it), which keeps f_L reading the patch."""

    start: Literal["warmup", "pretrain"] = "warmup"
    local_aux: Decay = 0.0
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
    """f_L (+ its head) on patches around the box (`boxes.source`), shifted by up to
    `jitter` px; without boxes it is skipped (logged); steps 0 skips it everywhere."""

    steps: Steps = 300
    lr: Rate = 2e-3
    weight_decay: Decay = 1e-4
    batch_size: Count = 64
    jitter: Steps = 8


class BoxWarmupSection(Section):
    """Warm starts from a box per frame: a DEPARTURE from both papers, which learn
    where to look from the classification signal alone. From a uniform start that
    signal is too weak for a CPU budget (V1's PPO reward is ~0 while f_C cannot use
    patches; V2's crop gradient is noise). Where the box comes from (`source`):

    - `evidence` (default, needs only labels): the class-evidence map of the frame
      stage's network (`frames`), i.e. its linear head applied at every position of
      f_L's map, read in the frame's own label channel; the box is centred on its
      peak (adafocus.train.boxes). `evidence_shifts` 4 reads the map at four
      half-stride offsets (a twice finer grid, four times the cost);
    - `truth`: the scene's own object box (moving digits only: an optional extra, for
      measuring what true boxes add);
    - `none`: no box stages.

    Box stages whose boxes cannot be had (`evidence` without a frame stage, `truth`
    on a folder) are skipped, logged and listed in the checkpoint. With boxes:

    - `glance_steps`: f_G + a 1x1 conv locator learn which glance cell holds the
      box centre, and f_G's own head the label (single frames, batch `batch_size`);
      f_G then starts the glance-only baseline, V1 and V2.
    - `steps` (per variant, after V1's random-patch warm-up / before V2's end-to-end
      stage): the policy is fitted to the box (V1: cross-entropy to the grid cell
      whose patch is centred nearest the digit; V2: L1 to that location), while f_L
      and f_C learn from patches at the box (`oracle_fraction` of the steps) mixed
      with the policy's own choices, so f_C learns to rely on f_L.

    The papers' stages (V1 PPO with its reward, V2 end to end) then run on top.
    `box_size`: the side (px) of a derived box, which only fixes its centre.
    """

    source: Literal["evidence", "truth", "none"] = "evidence"
    evidence_shifts: Literal[1, 4] = 4
    box_size: Count = 21
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
    full: FullBaselineSection = Field(default_factory=FullBaselineSection)


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
    main model ("best" = higher validation accuracy of V1 and V2). `precision`: the
    arithmetic of the training steps (adafocus.train.precision): "auto" is bfloat16
    autocast where the device computes it natively (CPUs with AVX512-BF16 or AMX,
    CUDA GPUs with bf16), float32 elsewhere."""

    seed: int = 0
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    frames: FrameSection = Field(default_factory=FrameSection)
    pretrain: PretrainSection = Field(default_factory=PretrainSection)
    boxes: BoxWarmupSection = Field(default_factory=BoxWarmupSection)
    v1: V1Section = Field(default_factory=V1Section)
    v2: V2Section = Field(default_factory=V2Section)
    baselines: BaselineSection = Field(default_factory=BaselineSection)
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    output: OutputSection = Field(default_factory=OutputSection)
    ship: Literal["best", "v1", "v2"] = "best"


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


def with_init(cfg: TrainConfig, spec: str) -> TrainConfig:
    """`cfg` starting from the checkpoint `spec` (`train --init`), validated again."""
    raw = to_dict(cfg)
    return parse_train_config({**raw, "model": {**raw["model"], "init": spec}})


def model_config(cfg: TrainConfig, policy: str, decided: Mapping[str, Any] | None = None
                 ) -> AdaFocusConfig:
    """The AdaFocusConfig of the run's V1 or V2 model. `decided` holds what the data
    decides (adafocus.train.data: class count, a folder's frame geometry); an override
    written in the config wins over it, except the class count, which must agree.
    Raises TrainConfigError naming the keys when the two do not fit together."""
    decided = dict(decided or {})
    overrides = cfg.model.overrides
    classes = decided.get("num_classes")
    if classes is not None and overrides.get("num_classes", classes) != classes:
        raise TrainConfigError(f"model.overrides.num_classes: {overrides['num_classes']} but "
                               f"the data has {classes} classes (leave it out: it follows "
                               "the data)")
    try:
        return preset(cfg.model.preset, **{**decided, **overrides, "policy": policy})
    except ValidationError as exc:
        where = ", ".join(f"{k} {v}" for k, v in decided.items() if k != "num_classes")
        raise TrainConfigError("; ".join(
            f"{line} (with {where} from the data)" if where else line
            for line in problems(exc, AdaFocusConfig, "model.overrides"))) from None
