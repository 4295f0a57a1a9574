"""The plain-data part of the model files, as schemas (README.md "Contracts: checkpoints").

A checkpoint (adafocus.checkpoint) and a baseline file (adafocus.baselines) are
``torch.save``'d dicts: tensors under "state_dict", plain data everywhere else.
This module says what that plain data must be, with adafocus.schema's rules, so a
file from another version or a hand-edited one is refused with every problem
named at its key ("normalization.std[1]: must be > 0.0, got 0.0") before a single
weight is touched. What only the weights or a count of the network can tell (the
GFLOPs match the config, the tensors fit it) is checked by the loaders after.

Torch-free, like the rest of the schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, create_model, model_validator

from adafocus.config import AdaFocusConfig, config_from_dict
from adafocus.interface import COMPONENTS
from adafocus.schema import LISTS_OK, Schema, located

CHECKPOINT_FORMAT = "adafocus-stream/1"
BASELINE_FORMAT = "adafocus-stream-baseline/1"
CALIBRATION_VERSION = 1

Positive = Annotated[float, Field(gt=0.0)]


class Normalization(Schema):
    """Per-channel (R, G, B) mean and std of the frames scaled to 0..1."""

    mean: Annotated[tuple[float, float, float], LISTS_OK]
    std: Annotated[tuple[Positive, Positive, Positive], LISTS_OK]


#: The "gflops" dict: one number per adafocus.interface.Costs component.
CostTable = create_model("CostTable", __base__=Schema, __doc__="GFLOPs per component.",
                         **{name: (float, ...) for name in COMPONENTS})


class CalibrationEntry(Schema):
    """Skip thresholds fitted for one compute budget (adafocus.skip.calibrate)."""

    budget: float
    pixel_change: float
    glance_change: float
    confidence: float
    cost: float
    agreement: float
    met: bool


class SkipCalibration(Schema):
    """A checkpoint's skip calibration: thresholds per budget."""

    version: Literal[CALIBRATION_VERSION]
    max_span: Annotated[int, Field(ge=1)]
    default_budget: float
    entries: Annotated[list[CalibrationEntry], Field(min_length=1)]


class ModelFile(Schema):
    """What every model file holds beside its weights."""

    config: Annotated[AdaFocusConfig, BeforeValidator(config_from_dict)]
    class_names: list[str]
    normalization: Normalization

    @model_validator(mode="after")
    def _names_fit(self) -> ModelFile:
        found = []
        count, classes = len(self.class_names), self.config.num_classes
        if count != classes:
            found.append((("class_names",), f"class-count mismatch: {count} class_names but "
                                            f"config.num_classes = {classes}"))
        if len(set(self.class_names)) != count:
            found.append((("class_names",), "class names are not unique"))
        if found:
            raise located(type(self).__name__, found)
        return self


class CheckpointMetadata(ModelFile):
    """An AdaFocus checkpoint, less its "state_dict"."""

    format: Literal[CHECKPOINT_FORMAT]
    gflops: CostTable
    skip_calibration: SkipCalibration | None
    training: dict[str, Any]


class BaselineMetadata(ModelFile):
    """A baseline file, less its "state_dict"."""

    format: Literal[BASELINE_FORMAT]
    kind: Literal["glance_only", "full_frame"]  # adafocus.models.baselines.BASELINES
    trained: bool
