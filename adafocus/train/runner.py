"""`train(config)`: every stage of one training run, resumable, then calibration and
the two output files (the checkpoint and its `.compare.pt`).

The stages that need object boxes (f_L pretraining, the box warm starts) run only
on data that knows them (moving digits); on a folder they are skipped, logged and
recorded in the checkpoint, so a config copied from the digits one runs as it is.
Model selection and skip calibration use the data's validation part (a folder's
held-out clips or validation folder, adafocus.train.data), never training data."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION, save_checkpoint
from adafocus.data.streams import SequenceDataset
from adafocus.models import AdaFocus, FullFrame, GlanceOnly
from adafocus.runtime import resolve_device
from adafocus.train import stages
from adafocus.train.calibrate import calibrate_model
from adafocus.train.comparisons import METHODS, method_costs, save_comparisons
from adafocus.train.config import (
    BoxWarmupSection,
    StageSection,
    TrainConfig,
    TrainConfigError,
    model_config,
    parse_train_config,
    to_dict,
)
from adafocus.train.data import (
    batch_sampler,
    box_sequence_sampler,
    object_crop_sampler,
    open_data,
    sequences,
)
from adafocus.train.loop import StageContext
from adafocus.train.progress import RunProgress
from adafocus.train.start import backbone_weights, init_from_checkpoint
from adafocus.train.state import RunState, seed_step

NORMALIZATION = IMAGENET_NORMALIZATION
BOX_STAGES = ("pretrain.local", "pretrain.glance", "v1.boxes", "v2.boxes")  # need object boxes


@dataclass
class TrainResult:
    checkpoint: Path
    comparisons: Path
    shipped: str
    seconds: float
    stages: dict[str, dict[str, Any]]


def state_path(cfg: TrainConfig, checkpoint: Path) -> Path:
    root = Path(cfg.output.state_dir) if cfg.output.state_dir else checkpoint.with_name(
        checkpoint.name + ".state")
    return root / "state.pt"


def train(cfg: TrainConfig, *, device: str = "cpu", output: str | Path | None = None,
          restart: bool = False, progress: bool = True, log=print) -> TrainResult:
    """Train baselines, AdaFocus V1 (3 stages) and V2 on causal sequences, calibrate
    skipping for every model on the validation data, and write the checkpoint (the
    variant better on validation, or `cfg.ship`) plus its comparison file. Starts
    from `cfg.model`'s weights (adafocus.train.start); resumes from the state file
    when present (same config required) unless `restart`."""
    began = time.perf_counter()
    dev = resolve_device(device)
    checkpoint = Path(output) if output is not None else Path(cfg.output.checkpoint)
    data = open_data(cfg)
    v1_cfg, v2_cfg = (model_config(cfg, p, data.decided) for p in ("v1", "v2"))
    torch.manual_seed(cfg.seed)
    models: dict[str, torch.nn.Module] = {
        "glance_only": GlanceOnly(v1_cfg), "full_frame": FullFrame(v1_cfg),
        "v1": AdaFocus(v1_cfg), "random_patch": AdaFocus(v1_cfg), "v2": AdaFocus(v2_cfg)}
    start = {"backbones": backbone_weights(cfg.model, models)}
    if cfg.model.init is not None:
        start.update(init_from_checkpoint(cfg.model.init, models, data.class_names))
    # the box warm start's glance locator: trained, resumable, never shipped
    models["glance_locator"] = torch.nn.Conv2d(models["v1"].glance.out_channels, 1, 1)
    for m in models.values():
        m.to(dev)

    run = RunState(state_path(cfg, checkpoint), to_dict(cfg), models, _upgraded)
    if restart and run.path.exists():
        run.path.unlink()
    if run.load():
        log(f"resuming from {run.path} (finished: {', '.join(run.done) or 'none'})")
    plan = _plan(cfg)
    skipped = [] if data.knows_boxes else [n for n, _ in plan if n in BOX_STAGES]
    if skipped:
        log(f"skipping {', '.join(skipped)}: data.source {cfg.data.source} has no object boxes")
    tracker = RunProgress([s for s in plan if s[0] not in skipped], run.done, log)

    sample = batch_sampler(data.train, cfg.data, cfg.seed, dev, NORMALIZATION)
    ctx = StageContext(run, cfg.seed, sample, cfg.output.save_every, progress, log, tracker)
    b = cfg.boxes
    boxes = data.knows_boxes
    if cfg.pretrain.steps and boxes:
        p = cfg.pretrain
        crops = object_crop_sampler(data.train, v1_cfg.patch_size, p.jitter, p.batch_size,
                                    cfg.seed, dev, NORMALIZATION)
        stages.pretrain_local(dataclasses.replace(ctx, sample=crops), models["v1"], p)
    box_ctx = dataclasses.replace(ctx, sample=box_sequence_sampler(
        data.train, cfg.data.seq_len, cfg.data.max_gap, cfg.data.batch_size, cfg.seed, dev,
        NORMALIZATION)) if boxes else ctx
    glance_init = None
    if b.glance_steps and boxes:
        frames = dataclasses.replace(ctx, sample=box_sequence_sampler(
            data.train, 1, 1, b.batch_size, cfg.seed + 1, dev, NORMALIZATION))
        stages.pretrain_glance(frames, models["v1"], models["glance_locator"],
                               _stage(b, b.glance_steps))
        glance_init = models["v1"].glance
    stages.train_baseline(ctx, "baseline.glance", models["glance_only"], cfg.baselines.glance,
                          init_from=glance_init)
    stages.train_baseline(ctx, "baseline.full", models["full_frame"], cfg.baselines.full,
                          init_from=models["v1"].local)
    stages.v1_warmup(ctx, models["v1"], models["glance_only"], cfg.v1.warmup)
    if not run.is_done("v1.snapshot"):  # stage-1 weights = the random/centre-patch model
        models["random_patch"].load_state_dict(models["v1"].state_dict())
        run.finish("v1.snapshot", {})
    if b.steps and boxes:
        stages.box_warmup(box_ctx, "v1.boxes", models["v1"], _stage(b, b.steps),
                          b.oracle_fraction)
    stages.v1_ppo(ctx, models["v1"], cfg.v1.ppo)
    stages.v1_finetune(ctx, models["v1"], cfg.v1.finetune)
    if not run.is_done("v2.init"):  # f_G, f_L, f_C from stage 1; the policy is its own
        state = {k: v for k, v in models["random_patch"].state_dict().items()
                 if not k.startswith("policy.")}
        models["v2"].load_state_dict(state, strict=False)
        run.finish("v2.init", {})
    if b.steps and boxes:
        stages.box_warmup(box_ctx, "v2.boxes", models["v2"], _stage(b, b.steps),
                          b.oracle_fraction)
    stages.v2_train(ctx, models["v2"], None, cfg.v2)

    log(f"calibrating skipping on the validation data; {tracker.line()}")
    results = _calibrate_all(cfg, run, models, data.val, dev, log)
    shipped = cfg.ship
    if shipped == "best":
        shipped = max(("v1", "v2"), key=lambda m: results[m]["accuracy"])
    seconds = time.perf_counter() - began
    summary = {"config": to_dict(cfg), "stages": run.done, "shipped": shipped,
               "validation_accuracy": {m: r["accuracy"] for m, r in results.items()},
               "validation": data.validation, "start": start,
               "skipped_stages": skipped,
               "data": {**data.summary, "fps": cfg.data.fps, "seq_len": cfg.data.seq_len,
                        "max_gap": cfg.data.max_gap, "gap_mode": cfg.data.gap_mode},
               "device": str(dev), "threads": torch.get_num_threads(), "seconds": seconds}
    save_checkpoint(checkpoint, models[shipped], data.class_names,
                    normalization=NORMALIZATION,
                    skip_calibration=results[shipped]["calibration"], training=summary)
    others = {k: v for k, v in models.items() if k not in (shipped, "glance_locator")}
    compare = save_comparisons(checkpoint.with_name(f"{checkpoint.stem}.compare.pt"), others,
                               {m: r for m, r in results.items() if m != shipped}, shipped)
    log(f"wrote {checkpoint} ({shipped}) and {compare} in {seconds:.0f} s")
    return TrainResult(checkpoint, compare, shipped, seconds, dict(run.done))


def _upgraded(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved run's config with the keys added since it was saved at their defaults
    (as they are unless set); one that no longer validates stays as it was saved."""
    try:
        return to_dict(parse_train_config(saved))
    except TrainConfigError:
        return saved


def _plan(cfg: TrainConfig) -> list[tuple[str, int]]:
    """Every stage with steps, in run order: what RunProgress counts the run's share
    done against (less the box stages a folder skips)."""
    b = cfg.boxes
    plan = [("pretrain.local", cfg.pretrain.steps), ("pretrain.glance", b.glance_steps),
            ("baseline.glance", cfg.baselines.glance.steps),
            ("baseline.full", cfg.baselines.full.steps), ("v1.warmup", cfg.v1.warmup.steps),
            ("v1.boxes", b.steps), ("v1.ppo", cfg.v1.ppo.steps),
            ("v1.finetune", cfg.v1.finetune.steps), ("v2.boxes", b.steps),
            ("v2.train", cfg.v2.train.steps)]
    return [(name, steps) for name, steps in plan if steps]


def _stage(b: BoxWarmupSection, steps: int) -> StageSection:
    """A box warm start's optimiser settings as a stage section of ``steps`` steps."""
    return StageSection(steps=steps, lr=b.lr, weight_decay=b.weight_decay)


def _calibrate_all(cfg: TrainConfig, run: RunState, models: dict[str, torch.nn.Module],
                   val_source, dev: torch.device, log) -> dict[str, dict[str, Any]]:
    """Skip calibration + every-frame validation accuracy of every method, on the same
    validation streams at the pipeline's own rate (every frame)."""
    if run.is_done("calibration"):
        return run.done["calibration"]
    c = cfg.calibration
    val = SequenceDataset(val_source, c.seq_len, max_gap=1, change_fraction=1.0, seed=cfg.seed)
    frames, labels = sequences(val, 0, c.sequences)
    results = {}
    for method, (name, source) in METHODS.items():
        model = models[name]
        seed_step(cfg.seed, f"calibration.{method}", 0)
        results[method] = calibrate_model(model, frames, labels, NORMALIZATION, dev,
                                          method_costs(model, source), c.budgets, source)
        log(f"calibrated {method}: every-frame validation accuracy "
            f"{results[method]['accuracy']:.3f}")
    run.finish("calibration", results)
    return results

