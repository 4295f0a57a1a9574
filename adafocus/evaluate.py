"""Evaluation on endless test streams, through the ONLINE path.

Every method of the table (glance-only, full-frame, centre patch, random patch,
AdaFocus V1, AdaFocusV2), with skipping off and at each calibrated budget, runs as
an online model (`OnlineAdaFocus`, `OnlineBaseline`) stepped frame by frame,
causally, on the same test streams (adafocus.evaluate_streams: held-out
moving-digits scenes, or a user's labelled folder) — exactly what the pipeline's
worker does — and is judged per frame with adafocus.evaluate_metrics: accuracy of
the published label against the current truth (overall and per class, with the
confusion matrix), GFLOPs actually spent per frame, and the delay from a label
change to the first correct (held) published label.

Every accuracy is read against chance, the accuracy of always answering the
majority class of the test truth: a target whose comparison involves a method
within CHANCE_MARGIN of chance is never reported met (two models at chance are
"within 2 points" of each other and mean nothing).

Writes report.json (everything), report.md (the tables and the targets, met,
missed or at chance) and plot.png (accuracy vs GFLOPs per frame, chance marked):
adafocus.evaluate_report.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from adafocus.baselines import OnlineBaseline
from adafocus.checkpoint import load_checkpoint
from adafocus.data.moving_digits import CLASS_NAMES
from adafocus.evaluate_metrics import (
    DEFAULT_HOLD,
    IGNORE,
    change_delays,
    change_points,
    confusion,
    frame_accuracy,
    majority_chance,
    per_class_accuracy,
    summarize_delays,
)
from adafocus.evaluate_report import METHOD_TITLES, write_report
from adafocus.evaluate_streams import DigitsStreams, FolderStreams, TestStreams
from adafocus.interface import CheckpointError
from adafocus.models import AdaFocus
from adafocus.online import OnlineAdaFocus
from adafocus.runtime import OnlineRunner
from adafocus.skip import SkipThresholds, thresholds_for_budget
from adafocus.train.comparisons import Method, compare_path, load_comparisons

METHOD_ORDER = tuple(METHOD_TITLES)
CHANCE_MARGIN = 0.05  # "a few points": closer to chance than this, an accuracy means nothing
_CODES = {"full": 0, "glance": 1, "skip": 2}


@dataclass(frozen=True)
class EvalSettings:
    """Test streams: `streams` moving-digits test scenes (seeds 0..streams-1, like
    synthetic://digits?seed=N), each run from frame 0 for `seconds` at `fps`; or,
    with `data`, every clip of that labelled folder, whole, sampled at `fps`."""

    streams: int = 8
    seconds: float = 60.0
    fps: float = 25.0
    budgets: tuple[float, ...] = (0.2, 0.3, 0.5)
    hold: int = DEFAULT_HOLD
    target_budget: float = 0.3
    seed: int = 0
    data: str | None = None


@dataclass
class Recording:
    """What every runner published on every stream. truth and valid are (S, N), the
    others (R, S, N), N the longest stream; frames past a stream's end are not
    valid (truth -1)."""

    truth: np.ndarray
    valid: np.ndarray
    preds: np.ndarray
    gflops: np.ndarray
    actions: np.ndarray


def load_methods(checkpoint: str | os.PathLike) -> tuple[dict[str, Method], list[str]]:
    """The checkpoint's own model plus those of its `.compare.pt` (when present).
    Returns the methods and notes on what is missing."""
    ck = load_checkpoint(checkpoint)
    main = ck.training.get("shipped", ck.config.policy)
    accuracy = ck.training.get("validation_accuracy", {}).get(main)
    methods = {main: Method(main, ck.build_model(), "policy", ck.costs, ck.skip_calibration,
                            accuracy)}
    notes = []
    try:
        _, others = load_comparisons(compare_path(checkpoint))
        methods.update({k: v for k, v in others.items() if k not in methods})
    except CheckpointError as exc:
        notes.append(f"comparison models unavailable: {exc}")
    return methods, notes


def _runners(methods: dict[str, Method], class_names: list[str],
             normalization: dict[str, list[float]], settings: EvalSettings, device: str
             ) -> list[tuple[str, str, OnlineRunner]]:
    runners = []
    for name in [m for m in METHOD_ORDER if m in methods]:
        method = methods[name]
        skips: list[tuple[str, Any]] = [("off", None)]
        if method.calibration is not None:
            skips += [(f"{b:g}", thresholds_for_budget(method.calibration, b))
                      for b in settings.budgets]
        for label, thresholds in skips:
            runners.append((name, label, _online(method, class_names, normalization, device,
                                                 thresholds)))
    return runners


def _online(method: Method, class_names: list[str], normalization: dict[str, list[float]],
            device: str, skip: SkipThresholds | None) -> OnlineRunner:
    """The method's model on the online runtime, as the pipeline's worker would run it."""
    if isinstance(method.model, AdaFocus):
        return OnlineAdaFocus(method.model, class_names, normalization, method.costs,
                              device=device, skip=skip, patch_source=method.patch_source)
    return OnlineBaseline(method.model, class_names, normalization, method.costs,
                          device=device, skip=skip)


def run_streams(runners: list[tuple[str, str, OnlineRunner]], streams: TestStreams,
                seed: int = 0, progress: bool = True, group: int = 32, chunk: int = 250
                ) -> Recording:
    """Step every runner through the same test streams, one frame at a time.

    Streams run `group` at a time (a stream's results never depend on the others in
    its batch), each read `chunk` frames at a time; a stream that ended leaves the
    batch. Actions are coded 0 full, 1 glance, 2 skip.
    """
    lengths = streams.lengths
    shape = (len(lengths), max(lengths))
    rec = Recording(np.full(shape, IGNORE, np.int64), np.zeros(shape, bool),
                    np.zeros((len(runners), *shape), np.int64),
                    np.zeros((len(runners), *shape)), np.zeros((len(runners), *shape), np.int8))
    torch.manual_seed(seed)  # the random-patch baseline draws from it
    bar = tqdm(total=sum(lengths), desc="eval", unit="frame", disable=not progress,
               dynamic_ncols=True)
    for first in range(0, len(lengths), group):
        members = range(first, min(len(lengths), first + group))
        for start in range(0, max(lengths[k] for k in members), chunk):
            data = {k: streams.chunk(k, start, min(chunk, lengths[k] - start))
                    for k in members if lengths[k] > start}
            for dt in range(max(len(labels) for _, labels in data.values())):
                active = [k for k, (_, labels) in data.items() if dt < len(labels)]
                frames = np.stack([data[k][0][dt] for k in active])
                t = start + dt
                rec.truth[active, t] = [data[k][1][dt] for k in active]
                rec.valid[active, t] = True
                ids = [f"test-{k}" for k in active]
                for r, (_, _, online) in enumerate(runners):
                    for k, res in zip(active, online.step(frames, ids), strict=True):
                        rec.preds[r, k, t], rec.gflops[r, k, t] = res.class_id, res.gflops
                        rec.actions[r, k, t] = _CODES[res.action]
                bar.update(len(active))
        for _, _, online in runners:
            for k in members:
                online.drop(f"test-{k}")
    bar.close()
    return rec


def _row(method: str, skip: str, rec: Recording, r: int, classes: int, gflops_full: float,
         settings: EvalSettings) -> dict[str, Any]:
    truth, valid, preds = rec.truth, rec.valid, rec.preds[r]
    gflops, actions = rec.gflops[r][valid], rec.actions[r][valid]
    delays = np.concatenate([change_delays(preds[k][valid[k]], truth[k][valid[k]], settings.hold)
                             for k in range(len(truth))])
    matrix = confusion(preds, truth, classes)
    row = {"method": method, "title": METHOD_TITLES[method], "skip": skip,
           "accuracy": frame_accuracy(preds.ravel(), truth.ravel()),
           "per_class_accuracy": per_class_accuracy(matrix).tolist(),
           "gflops_per_frame": float(gflops.mean()),
           "compute_vs_full_frame": float(gflops.mean() / gflops_full),
           "skipped_fraction": float((actions == 2).mean()),
           "glance_fraction": float((actions == 1).mean())}
    if skip == "off":
        row["confusion"] = matrix.tolist()
    row.update(summarize_delays(delays, settings.fps))
    # the median over ALL changes, a missed one counting as never noticed: a model that
    # misses most changes must not look fast because of the few it caught
    everything = np.where(np.isnan(delays), np.inf, delays)
    median_all = float(np.median(everything)) if len(delays) else float("nan")
    row["median_delay_all_frames"] = median_all
    row["median_delay_all_s"] = median_all / settings.fps
    return row


def check_targets(rows: list[dict[str, Any]], settings: EvalSettings,
                  chance: float = 0.0) -> list[dict[str, Any]]:
    """The issue's done-when targets, each with its numbers and its status: "met",
    "missed", or "at chance" (a method it compares is within CHANCE_MARGIN of the
    majority-class accuracy `chance`: then it is never met)."""
    def get(method: str, skip: str = "off") -> dict[str, Any] | None:
        return next((r for r in rows if r["method"] == method and r["skip"] == skip), None)

    ada = [r for r in (get("v1"), get("v2")) if r is not None]
    targets: list[dict[str, Any]] = []
    if not ada:
        return targets
    best = max(ada, key=lambda r: r["accuracy"])
    name = best["method"]

    def add(text: str, met: bool, detail: str, *compared: dict[str, Any]) -> None:
        near = [r for r in compared if not r["accuracy"] >= chance + CHANCE_MARGIN]
        if near:
            what = ", ".join(f"{r['title']} ({r['skip']}) {100 * r['accuracy']:.1f}%"
                             for r in near)
            targets.append({"target": text, "met": False, "status": "at chance",
                            "detail": f"{detail}; not judged: {what} within "
                                      f"{100 * CHANCE_MARGIN:.0f} points of chance "
                                      f"{100 * chance:.1f}%"})
            return
        targets.append({"target": text, "met": bool(met), "status": "met" if met else "missed",
                        "detail": detail})

    full = get("full_frame")
    if full is not None:
        ratio = full["gflops_per_frame"] / best["gflops_per_frame"]
        add(f"{name}: >= 3x fewer GFLOPs/frame than full-frame", ratio >= 3,
            f"{ratio:.2f}x ({best['gflops_per_frame']:.4f} vs {full['gflops_per_frame']:.4f})",
            best, full)
        gap = 100 * (full["accuracy"] - best["accuracy"])
        add(f"{name}: accuracy within 2 points of full-frame", gap <= 2,
            f"{100 * best['accuracy']:.1f}% vs {100 * full['accuracy']:.1f}%", best, full)
    for base in ("random", "center"):
        other = get(base)
        if other is not None:
            lead = 100 * (best["accuracy"] - other["accuracy"])
            add(f"{name}: >= 10 points above {METHOD_TITLES[base]} at equal compute", lead >= 10,
                f"{lead:+.1f} points ({other['gflops_per_frame']:.4f} GFLOPs/frame)", best, other)
    budget = f"{settings.target_budget:g}"
    skipped = get(name, budget)
    if skipped is None:
        add(f"{name}: skipping at budget {budget}", False, "no skip calibration for it")
    else:
        drop = 100 * (best["accuracy"] - skipped["accuracy"])
        add(f"{name} skip at budget {budget}: accuracy within 3 points of skip-off", drop <= 3,
            f"{100 * skipped['accuracy']:.1f}% vs {100 * best['accuracy']:.1f}% "
            f"({skipped['compute_vs_full_frame']:.3f} of full-frame compute)", best, skipped)
        median = skipped["median_delay_all_s"]
        add(f"{name} skip at budget {budget}: median change delay < 0.5 s",
            bool(median < 0.5) if not math.isnan(median) else False,
            f"{median:.2f} s over all changes, missed ones counted as never "
            f"({100 * skipped['missed_fraction']:.0f}% missed; "
            f"{skipped['median_delay_s']:.2f} s over those noticed)", skipped)
    return targets


def streams_for(settings: EvalSettings, class_names: list[str], frame_size: tuple[int, int]
                ) -> TestStreams:
    """The folder `settings.data` when given, else the moving-digits test scenes, which
    only a model of the ten digits can be judged on (anything else would silently be
    scored against labels it does not know)."""
    if settings.data is not None:
        return FolderStreams(settings.data, class_names, settings.fps, frame_size)
    if list(class_names) != CLASS_NAMES:
        shown = ", ".join(class_names[:5]) + (", ..." if len(class_names) > 5 else "")
        raise ValueError(f"this model's classes ({shown}) are not the moving-digits scene's; "
                         "evaluate it on a labelled folder of its own kind: --data DIR")
    return DigitsStreams(settings.streams, settings.seconds, settings.fps, settings.seed,
                         frame_size)


def evaluate(checkpoint: str | os.PathLike = "builtin:digits", out_dir: str | os.PathLike =
             "runs/eval", settings: EvalSettings | None = None, device: str = "cpu",
             progress: bool = True) -> dict[str, Any]:
    """Run the comparison and write report.json, report.md and plot.png to `out_dir`.
    A folder whose labels the model does not know raises DatasetError (a ValueError)."""
    settings = settings or EvalSettings()
    methods, notes = load_methods(checkpoint)
    ck = load_checkpoint(checkpoint)
    streams = streams_for(settings, ck.class_names, ck.config.frame_size)
    trained_on = ck.training.get("data", {})
    if settings.data is None and trained_on.get("source") == "folder":
        notes.append(f"trained on the folder {trained_on.get('root')} but evaluated on the "
                     "moving-digits test scenes; --data DIR evaluates on clips of its kind")
    runners = _runners(methods, ck.class_names, ck.normalization, settings, device)
    rec = run_streams(runners, streams, settings.seed, progress)
    classes = len(ck.class_names)
    rows = [_row(name, skip, rec, r, classes, ck.costs.local_full, settings)
            for r, (name, skip, _) in enumerate(runners)]
    majority, chance = majority_chance(rec.truth)
    report = {"checkpoint": os.fspath(checkpoint), "device": str(runners[0][2].device),
              "settings": asdict(settings), "streams": streams.description,
              "class_names": list(ck.class_names), "frames": int(rec.valid.sum()),
              "labelled_frames": int((rec.truth != IGNORE).sum()),
              "changes": int(sum(len(change_points(y)) for y in rec.truth)),
              "chance": {"label": ck.class_names[majority] if majority >= 0 else None,
                         "accuracy": chance},
              "validation_accuracy": {k: m.val_accuracy for k, m in methods.items()},
              "validation": ck.training.get("validation"),
              "rows": rows, "notes": notes}
    report["targets"] = check_targets(rows, settings, chance)
    write_report(report, Path(out_dir))
    return report
