"""The models the bench serves, one file each, prepared once into the cache.

Per preset three variants go through the same pipeline:

- ``full_frame``: the high-capacity network f_L on the whole frame, every frame
  (``adafocus.baselines``; for the trained preset the full-frame baseline of the
  checkpoint's ``NAME.compare.pt``, as trained by ``adafocus-stream train``);
- ``adafocus``: AdaFocus with skipping off (every frame: glance, policy, patch);
- ``adafocus_skip``: AdaFocus with adaptive skipping at the calibrated budget.

The ``tiny`` row uses the given checkpoint (default ``builtin:digits``). The
``paper`` preset (MobileNetV2 + ResNet-50) has no trained weights here (none can be
downloaded), so its rows run random weights: their throughput is real, their
accuracy is meaningless and is reported as such. A model without a skip
calibration (``paper``, or an untrained development checkpoint) is calibrated on a
few validation-split moving-digits sequences, so ``adafocus_skip`` has thresholds
to run with; the copy goes to the cache and the original file is never touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

METHODS = ("full_frame", "adafocus", "adafocus_skip")
CEILING_PRESET = "none"  # the decode ceiling's rows
PRESETS = ("tiny", "paper")
CALIBRATION_BUDGETS = (0.2, 0.3, 0.5)  # as adafocus.train (default 0.3)
CALIBRATION_SEQUENCES, CALIBRATION_STEPS = 2, 16


@dataclass(frozen=True)
class Variant:
    """One row of the bench: a model file and how the worker runs it."""

    preset: str
    method: str
    model_file: str
    skip_mode: str  # "off" | "confidence"
    budget: float | None
    trained: bool
    frame_size: tuple[int, int]
    gflops_full: float  # f_L on the whole frame (the reference every saving is against)
    val_accuracy: float | None = None  # every-frame validation accuracy from training

    @property
    def name(self) -> str:
        return self.method if self.preset == CEILING_PRESET else f"{self.preset}/{self.method}"

    def describe(self) -> str:
        if self.preset == CEILING_PRESET:
            return "no model: the worker only reads the frames"
        return (f"{'trained' if self.trained else 'untrained'} weights, skip {self.skip_mode}"
                + (f" at budget {self.budget:g}" if self.budget is not None else ""))


def ceiling_variant(frame_size: tuple[int, int]) -> Variant:
    """The decode ceiling: the pipeline with no model (stream.infer.read_only), frames
    scaled to `frame_size` as for the models."""
    height, width = frame_size
    return Variant(preset=CEILING_PRESET, method="decode_ceiling",
                   model_file=f"none:{height}x{width}", skip_mode="off", budget=None,
                   trained=False, frame_size=frame_size, gflops_full=0.0)


def prepare_variants(cache_dir: Path, checkpoint: str, presets: tuple[str, ...],
                     log: Callable[[str], None] = print) -> list[Variant]:
    """The bench's variants, in run order (per preset: the baseline first)."""
    import torch

    from adafocus import IMAGENET_NORMALIZATION, AdaFocus, load_checkpoint, preset

    variants: list[Variant] = []
    for name in presets:
        if name == "tiny":
            ckpt = load_checkpoint(checkpoint)
            model, names, norm = ckpt.build_model(), ckpt.class_names, ckpt.normalization
            trained, source, digest = bool(ckpt.training), ckpt.path, _file_digest(ckpt.path)
            calibrated = ckpt.skip_calibration is not None
            shipped = ckpt.training.get("shipped")
            accuracy = ckpt.training.get("validation_accuracy", {}).get(shipped)
        else:
            torch.manual_seed(0)
            model = AdaFocus(preset(name, num_classes=10))
            names, norm = [str(i) for i in range(10)], IMAGENET_NORMALIZATION
            trained, source, digest, calibrated = False, None, "untrained-seed0", False
            accuracy = None
        adafocus_file = source if calibrated else cache_dir / f"{name}-adafocus-{digest}.pt"
        if not adafocus_file.is_file():
            log(f"calibrating skipping for {name} ({'trained' if trained else 'untrained'}; "
                f"once, cached as {adafocus_file.name})")
            _save_calibrated(adafocus_file, model, names, norm, trained)
        variants += _preset_variants(cache_dir, name, adafocus_file, trained, accuracy, source,
                                     digest, log)
    return variants


def _preset_variants(cache_dir: Path, name: str, adafocus_file: Path, trained: bool,
                     accuracy: float | None, source: Path | None, digest: str,
                     log: Callable[[str], None]) -> list[Variant]:
    from adafocus import load_checkpoint

    ckpt = load_checkpoint(adafocus_file)
    budget = float(ckpt.skip_calibration["default_budget"])
    baseline_file, baseline_trained, baseline_accuracy = _baseline(cache_dir, name, source,
                                                                   ckpt, digest, log)
    size = tuple(ckpt.config.frame_size)
    full = ckpt.costs.local_full
    common = {"preset": name, "frame_size": size, "gflops_full": full}
    return [
        Variant(method="full_frame", model_file=str(baseline_file), skip_mode="off",
                budget=None, trained=baseline_trained, val_accuracy=baseline_accuracy, **common),
        Variant(method="adafocus", model_file=str(adafocus_file), skip_mode="off",
                budget=None, trained=trained, val_accuracy=accuracy, **common),
        Variant(method="adafocus_skip", model_file=str(adafocus_file), skip_mode="confidence",
                budget=budget, trained=trained, **common),
    ]


def _baseline(cache_dir: Path, name: str, source: Path | None, ckpt, digest: str,
              log: Callable[[str], None]) -> tuple[Path, bool, float | None]:
    """(file, trained, validation accuracy) of the full-frame baseline: the trained
    one from the checkpoint's `.compare.pt` when there is one, else random weights."""
    import torch

    from adafocus.baselines import save_baseline
    from adafocus.models import FullFrame
    from adafocus.train.comparisons import compare_path, load_comparisons

    compare = compare_path(source) if source is not None else None
    if compare is not None and compare.is_file():
        path = cache_dir / f"{name}-full_frame-{_file_digest(compare)}.pt"
        _, methods = load_comparisons(compare)
        if "full_frame" not in methods:
            raise ValueError(f"{compare}: has no full_frame baseline")
        if not path.is_file():
            log(f"extracting the trained full-frame baseline from {compare.name}")
            save_baseline(path, methods["full_frame"].model, ckpt.class_names,
                          normalization=ckpt.normalization, trained=True)
        return path, True, methods["full_frame"].val_accuracy
    path = cache_dir / f"{name}-full_frame-untrained-{digest}.pt"
    if not path.is_file():
        if source is not None:
            log(f"no {compare.name if compare else 'comparison file'} beside the checkpoint: "
                "the full-frame baseline runs random weights (throughput only)")
        torch.manual_seed(0)
        save_baseline(path, FullFrame(ckpt.config), ckpt.class_names,
                      normalization=ckpt.normalization, trained=False)
    return path, False, None


def _save_calibrated(path: Path, model, class_names: list[str],
                     normalization: dict[str, list[float]], trained: bool) -> None:
    """Fit skip thresholds on validation-split scenes at the model's frame size and
    save the model with them (adafocus.train.calibrate, as training does)."""
    import numpy as np
    import torch

    from adafocus import component_gflops, save_checkpoint
    from adafocus.data.moving_digits import MovingDigitsScene
    from adafocus.train.calibrate import calibrate_model

    height, width = model.config.frame_size
    clips = [MovingDigitsScene(seed, height, width, split="val").clip(0, CALIBRATION_STEPS)
             for seed in range(CALIBRATION_SEQUENCES)]
    frames = np.stack([c[0] for c in clips])
    labels = np.stack([c[1] for c in clips])
    result = calibrate_model(model, frames, labels, normalization, torch.device("cpu"),
                             component_gflops(model.config), CALIBRATION_BUDGETS)
    training = {"note": "skip calibration by stream.bench", "trained": trained}
    save_checkpoint(path, model, class_names, normalization=normalization,
                    skip_calibration=result["calibration"], training=training)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
