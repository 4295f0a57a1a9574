"""Evaluation on endless test streams, through the ONLINE path.

Every method of the table (glance-only, full-frame, centre patch, random patch,
AdaFocus V1, AdaFocusV2), with skipping off and at each calibrated budget, runs as
an online model (`OnlineAdaFocus`, `OnlineBaseline`) stepped frame by frame,
causally, on the same held-out moving-digits test streams (test-split handwriting,
test scene seeds) — exactly what the pipeline's worker does — and is judged per
frame with
adafocus.evaluate_metrics: accuracy of the published label against the current
truth, GFLOPs actually spent per frame, and the delay from a label change to the
first correct (held) published label.

Writes report.json (everything), report.md (the table and the targets, met or
missed) and plot.png (accuracy vs GFLOPs per frame).
"""

from __future__ import annotations

import json
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
from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.evaluate_metrics import (
    DEFAULT_HOLD,
    change_delays,
    frame_accuracy,
    summarize_delays,
)
from adafocus.interface import CheckpointError
from adafocus.models import AdaFocus
from adafocus.online import OnlineAdaFocus
from adafocus.runtime import OnlineRunner
from adafocus.skip import SkipThresholds, thresholds_for_budget
from adafocus.train.comparisons import Method, compare_path, load_comparisons

METHOD_ORDER = ("glance_only", "full_frame", "center", "random", "v1", "v2")
METHOD_TITLES = {"glance_only": "glance only (f_G)", "full_frame": "full frame (f_L)",
                 "center": "centre patch", "random": "random patch", "v1": "AdaFocus V1",
                 "v2": "AdaFocusV2"}


@dataclass(frozen=True)
class EvalSettings:
    """Test streams: `streams` moving-digits test scenes (seeds 0..streams-1, like
    synthetic://digits?seed=N), each run from frame 0 for `seconds` at `fps`."""

    streams: int = 8
    seconds: float = 60.0
    fps: float = 25.0
    budgets: tuple[float, ...] = (0.2, 0.3, 0.5)
    hold: int = DEFAULT_HOLD
    target_budget: float = 0.3
    seed: int = 0


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


def run_streams(runners: list[tuple[str, str, OnlineRunner]], settings: EvalSettings,
                frame_size: tuple[int, int], progress: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step every runner through the same test streams, one frame at a time.

    Returns truth (S, N), predictions (R, S, N), gflops (R, S, N) and the action
    codes (R, S, N: 0 full, 1 glance, 2 skip).
    """
    scenes = [MovingDigitsScene(settings.seed + k, *frame_size, split="test", fps=settings.fps)
              for k in range(settings.streams)]
    ids = [f"test-{k}" for k in range(settings.streams)]
    n = int(round(settings.seconds * settings.fps))
    shape = (len(runners), len(scenes), n)
    truth = np.zeros((len(scenes), n), np.int64)
    preds, gflops = np.zeros(shape, np.int64), np.zeros(shape)
    actions = np.zeros(shape, np.int8)
    codes = {"full": 0, "glance": 1, "skip": 2}
    torch.manual_seed(settings.seed)  # the random-patch baseline draws from it
    for t in tqdm(range(n), desc="eval", disable=not progress, dynamic_ncols=True):
        frames = np.stack([s.frame(t) for s in scenes])
        truth[:, t] = [s.label_at(t) for s in scenes]
        for r, (_, _, online) in enumerate(runners):
            for k, res in enumerate(online.step(frames, ids)):
                preds[r, k, t], gflops[r, k, t] = res.class_id, res.gflops
                actions[r, k, t] = codes[res.action]
    return truth, preds, gflops, actions


def _row(method: str, skip: str, truth: np.ndarray, preds: np.ndarray, gflops: np.ndarray,
         actions: np.ndarray, gflops_full: float, settings: EvalSettings) -> dict[str, Any]:
    delays = np.concatenate([change_delays(p, y, settings.hold) for p, y in zip(preds, truth,
                                                                                 strict=True)])
    row = {"method": method, "title": METHOD_TITLES[method], "skip": skip,
           "accuracy": frame_accuracy(preds.ravel(), truth.ravel()),
           "gflops_per_frame": float(gflops.mean()),
           "compute_vs_full_frame": float(gflops.mean() / gflops_full),
           "skipped_fraction": float((actions == 2).mean()),
           "glance_fraction": float((actions == 1).mean())}
    row.update(summarize_delays(delays, settings.fps))
    # the median over ALL changes, a missed one counting as never noticed: a model that
    # misses most changes must not look fast because of the few it caught
    everything = np.where(np.isnan(delays), np.inf, delays)
    median_all = float(np.median(everything)) if len(delays) else float("nan")
    row["median_delay_all_frames"] = median_all
    row["median_delay_all_s"] = median_all / settings.fps
    return row


def check_targets(rows: list[dict[str, Any]], settings: EvalSettings) -> list[dict[str, Any]]:
    """The issue's done-when targets, each with its numbers and met / missed."""
    def get(method: str, skip: str = "off") -> dict[str, Any] | None:
        return next((r for r in rows if r["method"] == method and r["skip"] == skip), None)

    ada = [r for r in (get("v1"), get("v2")) if r is not None]
    targets: list[dict[str, Any]] = []
    if not ada:
        return targets
    best = max(ada, key=lambda r: r["accuracy"])
    name = best["method"]

    def add(text: str, met: bool | None, detail: str) -> None:
        targets.append({"target": text, "met": met, "detail": detail})

    full = get("full_frame")
    if full is not None:
        ratio = full["gflops_per_frame"] / best["gflops_per_frame"]
        add(f"{name}: >= 3x fewer GFLOPs/frame than full-frame", ratio >= 3,
            f"{ratio:.2f}x ({best['gflops_per_frame']:.4f} vs {full['gflops_per_frame']:.4f})")
        gap = 100 * (full["accuracy"] - best["accuracy"])
        add(f"{name}: accuracy within 2 points of full-frame", gap <= 2,
            f"{100 * best['accuracy']:.1f}% vs {100 * full['accuracy']:.1f}%")
    for base in ("random", "center"):
        other = get(base)
        if other is not None:
            lead = 100 * (best["accuracy"] - other["accuracy"])
            add(f"{name}: >= 10 points above {METHOD_TITLES[base]} at equal compute", lead >= 10,
                f"+{lead:.1f} points ({other['gflops_per_frame']:.4f} GFLOPs/frame)")
    budget = f"{settings.target_budget:g}"
    skipped = get(name, budget)
    if skipped is None:
        add(f"{name}: skipping at budget {budget}", False, "no skip calibration for it")
    else:
        drop = 100 * (best["accuracy"] - skipped["accuracy"])
        add(f"{name} skip at budget {budget}: accuracy within 3 points of skip-off", drop <= 3,
            f"{100 * skipped['accuracy']:.1f}% vs {100 * best['accuracy']:.1f}% "
            f"({skipped['compute_vs_full_frame']:.3f} of full-frame compute)")
        median = skipped["median_delay_all_s"]
        add(f"{name} skip at budget {budget}: median change delay < 0.5 s",
            bool(median < 0.5) if not math.isnan(median) else False,
            f"{median:.2f} s over all changes, missed ones counted as never "
            f"({100 * skipped['missed_fraction']:.0f}% missed; "
            f"{skipped['median_delay_s']:.2f} s over those noticed)")
    return targets


def markdown(report: dict[str, Any]) -> str:
    """The table and targets as Markdown (pasted into the README)."""
    s = report["settings"]
    lines = [f"Online evaluation of `{report['checkpoint']}` on {s['streams']} held-out "
             f"moving-digits test streams x {s['seconds']:g} s at {s['fps']:g} fps "
             f"({report['frames']} frames, {report['changes']} label changes), "
             f"device {report['device']}.", "",
             "| method | skip budget | accuracy | GFLOPs/frame | vs full-frame | "
             "median change delay | missed changes | frames skipped / glance-only |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        delay = (f"{r['median_delay_frames']:.0f} fr / {r['median_delay_s']:.2f} s"
                 if not math.isnan(r["median_delay_frames"]) else "-")
        if math.isinf(r["median_delay_all_frames"]):
            delay = f"never (noticed: {delay})"
        lines.append(
            f"| {r['title']} | {r['skip']} | {100 * r['accuracy']:.1f}% | "
            f"{r['gflops_per_frame']:.4f} | {r['compute_vs_full_frame']:.3f} | {delay} | "
            f"{100 * r['missed_fraction']:.1f}% | "
            f"{100 * r['skipped_fraction']:.0f}% / {100 * r['glance_fraction']:.0f}% |")
    lines += ["", "Targets:", ""]
    for t in report["targets"]:
        lines.append(f"- {'met' if t['met'] else 'MISSED'}: {t['target']} ({t['detail']})")
    for note in report["notes"]:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Accuracy vs GFLOPs per frame, one line per method through its skip settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for method in METHOD_ORDER:
        rows = sorted((r for r in report["rows"] if r["method"] == method),
                      key=lambda r: r["gflops_per_frame"])
        if not rows:
            continue
        x = [r["gflops_per_frame"] for r in rows]
        y = [100 * r["accuracy"] for r in rows]
        ax.plot(x, y, marker="o", label=METHOD_TITLES[method])
        off = next(r for r in rows if r["skip"] == "off")
        ax.scatter([off["gflops_per_frame"]], [100 * off["accuracy"]], s=90,
                   facecolors="none", edgecolors="black", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs (GMACs) per frame, log scale")
    ax.set_ylabel("per-frame accuracy of the current label (%)")
    ax.set_title("Online, causal, endless test streams (circled: skipping off)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _json_safe(x: Any) -> Any:
    """NaN / inf (e.g. no change noticed) become null: strict JSON readers reject them."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def evaluate(checkpoint: str | os.PathLike = "builtin:digits", out_dir: str | os.PathLike =
             "runs/eval", settings: EvalSettings | None = None, device: str = "cpu",
             progress: bool = True) -> dict[str, Any]:
    """Run the comparison and write report.json, report.md and plot.png to `out_dir`."""
    settings = settings or EvalSettings()
    methods, notes = load_methods(checkpoint)
    ck = load_checkpoint(checkpoint)
    runners = _runners(methods, ck.class_names, ck.normalization, settings, device)
    truth, preds, gflops, actions = run_streams(runners, settings, ck.config.frame_size,
                                                progress)
    gflops_full = ck.costs.local_full
    rows = [_row(name, skip, truth, preds[r], gflops[r], actions[r], gflops_full, settings)
            for r, (name, skip, _) in enumerate(runners)]
    report = {"checkpoint": os.fspath(checkpoint), "device": str(runners[0][2].device),
              "settings": asdict(settings), "frames": int(truth.size),
              "changes": int(sum(len(change_delays(y, y)) for y in truth)),
              "validation_accuracy": {k: m.val_accuracy for k, m in methods.items()},
              "rows": rows, "notes": notes}
    report["targets"] = check_targets(rows, settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    plot(report, out / "plot.png")
    return report
