"""`train(config)`: every stage of one training run, resumable, then calibration and
the two output files (the checkpoint and its `.compare.pt`).

The stage plan (`_plan`), in order: the frame stage (f_L as a whole-frame
classifier, label-only), the box stages (glance locator, f_L on box patches: boxes
from the frame stage's class evidence, or the scene's own), the baselines, V1
(random-patch warm-up, box warm start, PPO, fine-tune), V2 (box warm start, end to
end). Box stages without a box source are skipped, logged and recorded in the
checkpoint. Model selection and skip calibration use the data's validation part
(a folder's held-out clips or validation folder, adafocus.train.data), never
training data."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION, save_checkpoint
from adafocus.data.streams import SequenceDataset
from adafocus.machine import cpu_name
from adafocus.models import AdaFocus, FullFrame, GlanceOnly
from adafocus.runtime import resolve_device
from adafocus.train import boxes as box_stages
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
    Sampling,
    TrainingData,
    batch_sampler,
    frame_sampler,
    open_data,
    sequences,
    truth_boxes,
)
from adafocus.train.evidence import EvidenceBoxes, EvidenceTable
from adafocus.train.loop import StageContext
from adafocus.train.precision import resolve_precision
from adafocus.train.progress import RunProgress
from adafocus.train.start import FrameNet, backbone_weights, init_from_checkpoint
from adafocus.train.state import RunState, seed_step

NORMALIZATION = IMAGENET_NORMALIZATION
BOX_STAGES = ("pretrain.glance", "pretrain.local", "v1.boxes", "v2.boxes")  # need boxes


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
    """Train the frame stage, baselines, AdaFocus V1 (3 stages) and V2 on causal
    sequences (with the box stages where there are boxes), calibrate skipping for
    every model on the validation data, and write the checkpoint (the variant better
    on validation, or `cfg.ship`) plus its comparison file. Starts from `cfg.model`'s
    weights (adafocus.train.start); resumes from the state file when present (same
    config required) unless `restart`."""
    began = time.perf_counter()
    dev = resolve_device(device)
    precision = resolve_precision(cfg.precision, dev)
    checkpoint = Path(output) if output is not None else Path(cfg.output.checkpoint)
    data = open_data(cfg)
    v1_cfg, v2_cfg = (model_config(cfg, p, data.decided) for p in ("v1", "v2"))
    torch.manual_seed(cfg.seed)
    models: dict[str, torch.nn.Module] = {
        "glance_only": GlanceOnly(v1_cfg), "full_frame": FullFrame(v1_cfg),
        "v1": AdaFocus(v1_cfg), "random_patch": AdaFocus(v1_cfg), "v2": AdaFocus(v2_cfg),
        "frame_net": FrameNet(v1_cfg)}
    start = {"backbones": backbone_weights(cfg.model, models)}
    if cfg.model.init is not None:
        start.update(init_from_checkpoint(cfg.model.init, models, data.class_names))
    # the box stages' glance locator: trained, resumable, never shipped (nor frame_net)
    models["glance_locator"] = torch.nn.Conv2d(models["v1"].glance.out_channels, 1, 1)
    for m in models.values():
        m.to(dev)

    run = RunState(state_path(cfg, checkpoint), to_dict(cfg), models, _upgraded)
    if restart and run.path.exists():
        run.path.unlink()
    if run.load():
        log(f"resuming from {run.path} (finished: {', '.join(run.done) or 'none'})")
    box_source, why = _box_source(cfg, data)
    plan = _plan(cfg)
    skipped = [] if box_source else [n for n, _ in plan if n in BOX_STAGES]
    if skipped:
        log(f"skipping {', '.join(skipped)}: {why}")
    tracker = RunProgress([s for s in plan if s[0] not in skipped], run.done, log)
    sampling = Sampling(cfg.seed, dev, NORMALIZATION, cfg.data.augment)
    ctx = StageContext(run, cfg.seed, batch_sampler(data.train, cfg.data, sampling),
                       cfg.output.save_every, progress, log, tracker, dev, precision)
    _stages(cfg, ctx, models, data, sampling, box_source)

    log(f"calibrating skipping on the validation data; {tracker.line()}")
    results = _calibrate_all(cfg, run, models, data.val, dev, log)
    shipped = cfg.ship
    if shipped == "best":
        shipped = max(("v1", "v2"), key=lambda m: results[m]["accuracy"])
    seconds = time.perf_counter() - began
    summary = {"config": to_dict(cfg), "stages": run.done, "shipped": shipped,
               "validation_accuracy": {m: r["accuracy"] for m, r in results.items()},
               "validation": data.validation, "start": start,
               "skipped_stages": skipped, "boxes": box_source or "none",
               "data": {**data.summary, "fps": cfg.data.fps, "seq_len": cfg.data.seq_len,
                        "max_gap": cfg.data.max_gap, "gap_mode": cfg.data.gap_mode},
               "device": str(dev), "precision": precision, "machine": machine(dev),
               "seconds": seconds}
    save_checkpoint(checkpoint, models[shipped], data.class_names,
                    normalization=NORMALIZATION,
                    skip_calibration=results[shipped]["calibration"], training=summary)
    others = {k: v for k, v in models.items()
              if k not in (shipped, "glance_locator", "frame_net")}
    compare = save_comparisons(checkpoint.with_name(f"{checkpoint.stem}.compare.pt"), others,
                               {m: r for m, r in results.items() if m != shipped}, shipped)
    log(f"wrote {checkpoint} ({shipped}) and {compare} in {seconds:.0f} s")
    return TrainResult(checkpoint, compare, shipped, seconds, dict(run.done))


def _stages(cfg: TrainConfig, ctx: StageContext, models: dict[str, torch.nn.Module],
            data: TrainingData, sampling: Sampling, box_source: str | None) -> None:
    """Every stage of the plan, in order (a finished one returns at once)."""
    run, b, v1 = ctx.run, cfg.boxes, models["v1"]
    frame_net = models["frame_net"]
    if cfg.frames.steps:
        frames = frame_sampler(data.train, cfg.frames.batch_size, sampling)
        stages.frame_classifier(dataclasses.replace(ctx, sample=frames), frame_net.local,
                                frame_net.head, cfg.frames)
        if not run.is_done("local.init"):  # f_L and its head start from the frame stage's
            v1.local.load_state_dict(frame_net.local.state_dict())
            v1.local_head.load_state_dict(frame_net.head.state_dict())
            run.finish("local.init", {})
    if box_source:
        sampling = dataclasses.replace(sampling, boxes=_boxes(cfg, box_source, data, sampling,
                                                              frame_net, ctx.precision))
        single = frame_sampler(data.train, b.batch_size, sampling, with_boxes=True, tag=0xB0)
        box_ctx = dataclasses.replace(ctx, sample=batch_sampler(
            data.train, cfg.data, sampling, with_boxes=True, seed=cfg.seed + 1))
        if b.glance_steps:
            box_stages.pretrain_glance(dataclasses.replace(ctx, sample=single), v1,
                                       models["glance_locator"], _stage(b, b.glance_steps))
        if cfg.pretrain.steps:
            p = cfg.pretrain
            crops = frame_sampler(data.train, p.batch_size, sampling, with_boxes=True, tag=0xC0)
            box_stages.pretrain_local(dataclasses.replace(ctx, sample=crops), v1, p, p.jitter)
    glance_init = v1.glance if box_source and b.glance_steps else None
    stages.train_baseline(ctx, "baseline.glance", models["glance_only"], cfg.baselines.glance,
                          init_from=glance_init)
    stages.train_baseline(ctx, "baseline.full", models["full_frame"], cfg.baselines.full,
                          init_from=frame_net.local if cfg.frames.steps else v1.local)
    from_pretrain = cfg.v1.start == "pretrain"
    if from_pretrain and not run.is_done("v2.init"):  # V1 and V2 go on from here
        models["random_patch"].load_state_dict(v1.state_dict())
        _start_v2(models["v2"], v1)
        run.finish("v2.init", {})
    warm = models["random_patch"] if from_pretrain else v1
    stages.v1_warmup(ctx, warm, models["glance_only"], cfg.v1.warmup, cfg.v1.local_aux)
    if not from_pretrain and not run.is_done("v1.snapshot"):
        models["random_patch"].load_state_dict(v1.state_dict())  # the random/centre model
        run.finish("v1.snapshot", {})
    if b.steps and box_source:
        box_stages.box_warmup(box_ctx, "v1.boxes", v1, _stage(b, b.steps), b.oracle_fraction)
    stages.v1_ppo(ctx, v1, cfg.v1.ppo)
    stages.v1_finetune(ctx, v1, cfg.v1.finetune, cfg.v1.local_aux)
    if not run.is_done("v2.init"):  # f_G, f_L, f_C from stage 1; the policy is its own
        _start_v2(models["v2"], models["random_patch"])
        run.finish("v2.init", {})
    if b.steps and box_source:
        box_stages.box_warmup(box_ctx, "v2.boxes", models["v2"], _stage(b, b.steps),
                              b.oracle_fraction)
    stages.v2_train(ctx, models["v2"], None, cfg.v2)


def _start_v2(v2: torch.nn.Module, source: torch.nn.Module) -> None:
    """V2 starts with `source`'s f_G, f_L and f_C; its policy is its own."""
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("policy.")}
    v2.load_state_dict(state, strict=False)


def machine(device: torch.device) -> dict[str, Any]:
    """What a run's weights depend on besides its config and seed (README,
    "Reproducibility"): the torch build, the processor and the thread count."""
    return {"torch": str(torch.__version__), "cpu": cpu_name(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def _box_source(cfg: TrainConfig, data: TrainingData) -> tuple[str | None, str]:
    """("truth" | "evidence" | None, why there is none)."""
    source = cfg.boxes.source
    if source == "truth":
        if data.knows_boxes:
            return "truth", ""
        return None, (f"boxes.source truth needs object boxes and data.source "
                      f"{cfg.data.source} has none (boxes.source evidence finds them from "
                      "the labels: see adafocus/configs/folder-tiny.yaml)")
    if source == "evidence":
        if cfg.frames.steps:
            return "evidence", ""
        return None, "boxes.source evidence needs the frame stage (frames.steps > 0)"
    return None, "boxes.source none"


def _boxes(cfg: TrainConfig, source: str, data: TrainingData, sampling: Sampling,
           frame_net: FrameNet, precision: str):
    """The run's box of each frame: the scene's own, or label-only class evidence
    (a table over a folder held in memory, else batch by batch)."""
    if source == "truth":
        return truth_boxes(data.train)
    evidence = EvidenceBoxes(frame_net.local, frame_net.head, sampling.normalization,
                             sampling.device, precision, cfg.boxes.evidence_shifts,
                             cfg.boxes.box_size)
    decoded = getattr(data.train, "decoded", lambda: None)()
    if decoded is None:
        return evidence
    table: list[EvidenceTable] = []

    def lookup(frames, labels, refs):
        if not table:  # on first use: nothing to compute when the box stages are done
            table.append(EvidenceTable(evidence, decoded, data.train.frame_labels()))
        return table[0](frames, labels, refs)

    return lookup


def _upgraded(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved run's config with the keys added since it was saved at their defaults
    (as they are unless set), except two whose default is not what such a run did: it
    trained in float32, on the data's own boxes (`truth`, skipped without them). One
    that no longer validates stays as it was saved."""
    before = dict(saved)
    before.setdefault("precision", "float32")
    if isinstance(saved.get("boxes"), dict):
        before["boxes"] = {"source": "truth", **saved["boxes"]}
    try:
        return to_dict(parse_train_config(before))
    except TrainConfigError:
        return saved


def _plan(cfg: TrainConfig) -> list[tuple[str, int]]:
    """Every stage with steps, in run order: what RunProgress counts the run's share
    done against (less the box stages skipped without boxes)."""
    b = cfg.boxes
    plan = [("frames.full", cfg.frames.steps), ("pretrain.glance", b.glance_steps),
            ("pretrain.local", cfg.pretrain.steps),
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

