"""One dataclass describes an AdaFocus model; presets give the two shapes we ship.

The config is stored verbatim (``dataclasses.asdict``) in every checkpoint, so it
holds only plain data (str, int, float, tuples of int). It is a pydantic dataclass
under the project's schema rules (adafocus.schema): to the models it is a plain
frozen dataclass (``fields``, ``replace``, ``asdict`` all work), while building one
validates every field at once, naming each bad one, whether it comes from code, a
train config's overrides or a stored checkpoint (``config_from_dict``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from adafocus.schema import LISTS_OK, RULES, causes, located

Positive = Annotated[int, Field(ge=1)]
Size = Annotated[tuple[Positive, Positive], LISTS_OK]  # (height, width)
Widths = Annotated[tuple[Positive, ...], LISTS_OK, Field(min_length=1)]
Strides = Annotated[tuple[Literal[1, 2], ...], LISTS_OK, Field(min_length=1)]


@dataclass(config=RULES)  # frozen, strict, unknown keys refused
class AdaFocusConfig:
    """Everything needed to build an :class:`~adafocus.models.AdaFocus`.

    Sizes are (height, width) in pixels. ``frame_size`` is the full-resolution frame
    the stream delivers; the glance network sees it resized to ``glance_size``; the
    local network sees a ``patch_size`` square cut from the full-resolution frame.
    Frames need not be square: the policy's candidate grid spans the frame's own
    (H - P, W - P) range.
    """

    name: str = "tiny"
    num_classes: Annotated[int, Field(ge=2)] = 10
    frame_size: Size = (128, 128)
    glance_size: Size = (32, 32)
    patch_size: Positive = 48
    # "v1": discrete grid, PPO actor-critic, exact integer crop (AdaFocus, ICCV 2021).
    # "v2": continuous location through a sigmoid, differentiable crop (AdaFocusV2).
    policy: Literal["v1", "v2"] = "v1"
    policy_grid: Size = (7, 7)
    glance_arch: Literal["tiny_cnn", "mobilenet_v2"] = "tiny_cnn"
    glance_channels: Widths = (16, 32, 64, 64)
    glance_strides: Strides = (1, 2, 2, 1)
    local_arch: Literal["tiny_cnn", "resnet50"] = "tiny_cnn"
    local_channels: Widths = (32, 64, 96, 128)
    local_strides: Strides = (1, 2, 2, 2)
    policy_channels: Positive = 8
    policy_hidden: Positive = 128
    classifier_hidden: Positive = 128
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @model_validator(mode="after")
    def _relations(self) -> AdaFocusConfig:
        """What no single field can say; every problem at once, at its key."""
        found = []
        if self.patch_size > min(self.frame_size):
            found.append((("patch_size",), f"{self.patch_size} does not fit in frame "
                                           f"{self.frame_size}"))
        for prefix in ("glance", "local"):
            if len(getattr(self, f"{prefix}_channels")) != len(getattr(self, f"{prefix}_strides")):
                found.append(((f"{prefix}_strides",),
                              "needs one stride per entry of the channel list"))
        if found:
            raise located("AdaFocusConfig", found)
        return self

    @property
    def grid_cells(self) -> int:
        """Number of candidate patch positions of the V1 policy."""
        return self.policy_grid[0] * self.policy_grid[1]


_PRESETS: dict[str, dict[str, Any]] = {
    # Moving digits on a CPU: 128x128 frames, a 32x32 glance finds the digit, a 48 px
    # patch holds an 18-24 px digit (the scene's default) wherever it sits: the 7x7 grid
    # steps 13.3 px, less than 48 - 28, so even a 28 px digit fits in some candidate.
    "tiny": {},
    # The AdaFocus reference setting: MobileNetV2 glance on 224, ResNet-50 on the patch.
    "paper": {
        "name": "paper",
        "num_classes": 200,
        "frame_size": (224, 224),
        "glance_size": (224, 224),
        "patch_size": 128,
        "glance_arch": "mobilenet_v2",
        "glance_channels": (1280,),
        "glance_strides": (2,),
        "local_arch": "resnet50",
        "local_channels": (2048,),
        "local_strides": (2,),
        "policy_channels": 32,
        "policy_hidden": 1024,
        "classifier_hidden": 1024,
    },
}
PRESET_NAMES = tuple(_PRESETS)
# AdaFocusV2's policy: conv1x1 -> 64 channels, linear -> 2048.
_PAPER_V2 = {"policy_channels": 64, "policy_hidden": 2048}


def preset(name: str, **overrides: Any) -> AdaFocusConfig:
    """Config of a named preset ("tiny" or "paper") with fields overridden.

    ``preset("paper", policy="v2")`` also switches the policy widths to AdaFocusV2's
    unless they are overridden explicitly. A bad override raises pydantic's
    ValidationError (a ValueError) naming every bad field.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    values = dict(_PRESETS[name])
    if name == "paper" and overrides.get("policy") == "v2":
        values.update(_PAPER_V2)
    return AdaFocusConfig(**{**values, **overrides})


def config_to_dict(config: AdaFocusConfig) -> dict[str, Any]:
    """Plain-data copy for checkpoints (tuples stay tuples; weights_only loads them)."""
    return dataclasses.asdict(config)


def config_from_dict(data: Any) -> AdaFocusConfig:
    """Rebuild a stored config, raising ValidationError with every problem.

    Every field is required: a checkpoint written by another version fails with a
    message naming the key instead of silently taking today's default (and a shape
    error later).
    """
    if not isinstance(data, dict):
        raise located("AdaFocusConfig", [((), f"expected a mapping, got {type(data).__name__}")])
    missing = [((f.name,), "required key is missing")
               for f in dataclasses.fields(AdaFocusConfig) if f.name not in data]
    try:
        config = AdaFocusConfig(**data)
    except ValidationError as exc:
        raise located("AdaFocusConfig", missing + causes(exc, AdaFocusConfig)) from None
    if missing:
        raise located("AdaFocusConfig", missing)
    return config


__all__ = ["AdaFocusConfig", "PRESET_NAMES", "preset", "config_to_dict", "config_from_dict"]
