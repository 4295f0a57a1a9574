"""One dataclass describes an AdaFocus model; presets give the two shapes we ship.

The config is stored verbatim (``dataclasses.asdict``) in every checkpoint, so it
holds only plain data (str, int, float, bool, tuples of int) and
``config_from_dict`` can validate a stored copy field by field before any
weights are touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

POLICY_KINDS = ("v1", "v2")
GLANCE_ARCHS = ("tiny_cnn", "mobilenet_v2")
LOCAL_ARCHS = ("tiny_cnn", "resnet50")


@dataclass(frozen=True)
class AdaFocusConfig:
    """Everything needed to build an :class:`~adafocus.models.AdaFocus`.

    Sizes are (height, width) in pixels. ``frame_size`` is the full-resolution frame
    the stream delivers; the glance network sees it resized to ``glance_size``; the
    local network sees a ``patch_size`` square cut from the full-resolution frame.
    Frames need not be square: the policy's candidate grid spans the frame's own
    (H - P, W - P) range.
    """

    name: str = "tiny"
    num_classes: int = 10
    frame_size: tuple[int, int] = (128, 128)
    glance_size: tuple[int, int] = (32, 32)
    patch_size: int = 48
    # "v1": discrete grid, PPO actor-critic, exact integer crop (AdaFocus, ICCV 2021).
    # "v2": continuous location through a sigmoid, differentiable crop (AdaFocusV2).
    policy: str = "v1"
    policy_grid: tuple[int, int] = (7, 7)
    glance_arch: str = "tiny_cnn"
    glance_channels: tuple[int, ...] = (16, 32, 64, 64)
    glance_strides: tuple[int, ...] = (1, 2, 2, 1)
    local_arch: str = "tiny_cnn"
    local_channels: tuple[int, ...] = (32, 64, 96, 128)
    local_strides: tuple[int, ...] = (1, 2, 2, 2)
    policy_channels: int = 8
    policy_hidden: int = 128
    classifier_hidden: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise ValueError(f"AdaFocusConfig.{name}: {problem}")

        if self.num_classes < 2:
            fail("num_classes", f"need at least 2 classes, got {self.num_classes}")
        for name in ("frame_size", "glance_size", "policy_grid"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) < 1:
                fail(name, f"expected (height, width) of positive ints, got {value!r}")
        if not 1 <= self.patch_size <= min(self.frame_size):
            fail("patch_size", f"{self.patch_size} does not fit in frame {self.frame_size}")
        if self.policy not in POLICY_KINDS:
            fail("policy", f"expected one of {POLICY_KINDS}, got {self.policy!r}")
        if self.glance_arch not in GLANCE_ARCHS:
            fail("glance_arch", f"expected one of {GLANCE_ARCHS}, got {self.glance_arch!r}")
        if self.local_arch not in LOCAL_ARCHS:
            fail("local_arch", f"expected one of {LOCAL_ARCHS}, got {self.local_arch!r}")
        for prefix in ("glance", "local"):
            chans = getattr(self, f"{prefix}_channels")
            strides = getattr(self, f"{prefix}_strides")
            if not chans or len(chans) != len(strides):
                fail(f"{prefix}_strides", "needs one stride per entry of the channel list")
            if any(s not in (1, 2) for s in strides) or min(chans) < 1:
                fail(f"{prefix}_strides", "strides must be 1 or 2 and channels positive")
        for name in ("policy_channels", "policy_hidden", "classifier_hidden"):
            if getattr(self, name) < 1:
                fail(name, "must be positive")
        if not 0.0 <= self.dropout < 1.0:
            fail("dropout", f"must be in [0, 1), got {self.dropout}")

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
# AdaFocusV2's policy: conv1x1 -> 64 channels, linear -> 2048.
_PAPER_V2 = {"policy_channels": 64, "policy_hidden": 2048}


def preset(name: str, **overrides: Any) -> AdaFocusConfig:
    """Config of a named preset ("tiny" or "paper") with fields overridden.

    ``preset("paper", policy="v2")`` also switches the policy widths to AdaFocusV2's
    unless they are overridden explicitly.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    values = dict(_PRESETS[name])
    if name == "paper" and overrides.get("policy") == "v2":
        values.update(_PAPER_V2)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(AdaFocusConfig)}
    if unknown:
        raise ValueError(f"unknown AdaFocusConfig fields: {sorted(unknown)}")
    values.update(overrides)
    return AdaFocusConfig(**values)


def config_to_dict(config: AdaFocusConfig) -> dict[str, Any]:
    """Plain-data copy for checkpoints (tuples stay tuples; weights_only loads them)."""
    return dataclasses.asdict(config)


_FIELD_KINDS: dict[str, str] = {
    f.name: ("pair" if f.name in ("frame_size", "glance_size", "policy_grid")
             else "ints" if f.type.startswith("tuple") else f.type)
    for f in dataclasses.fields(AdaFocusConfig)
}


def config_from_dict(data: Any) -> AdaFocusConfig:
    """Rebuild a config from plain data, naming the first bad field.

    Raises ValueError on unknown or missing keys and wrong types, so a checkpoint
    written by another version fails with a message instead of a shape error later.
    """
    if not isinstance(data, dict):
        raise ValueError(f"config must be a dict, got {type(data).__name__}")
    missing = sorted(set(_FIELD_KINDS) - set(data))
    unknown = sorted(set(data) - set(_FIELD_KINDS))
    if missing or unknown:
        raise ValueError(f"config keys do not match: missing {missing}, unknown {unknown}")
    values: dict[str, Any] = {}
    for name, kind in _FIELD_KINDS.items():
        value = data[name]
        if kind in ("pair", "ints"):
            ok = isinstance(value, (tuple, list)) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)
            value = tuple(value) if ok else value
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ValueError(f"config field {name!r}: expected {kind}, got {value!r}")
        values[name] = value
    return AdaFocusConfig(**values)


__all__ = ["AdaFocusConfig", "preset", "config_to_dict", "config_from_dict"]
