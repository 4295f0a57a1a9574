"""The evaluation's files: report.json (everything), report.md (what a person reads:
the comparison table, chance, per-class accuracy, a confusion matrix and the
targets) and plot.png (accuracy vs GFLOPs per frame, chance drawn across it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

METHOD_TITLES = {"glance_only": "glance only (f_G)", "full_frame": "full frame (f_L)",
                 "center": "centre patch", "random": "random patch", "v1": "AdaFocus V1",
                 "v2": "AdaFocusV2"}
STATUS_WORDS = {"met": "met", "missed": "MISSED", "at chance": "AT CHANCE (not judged)"}
MAX_CONFUSION_CLASSES = 20  # a wider matrix is unreadable as text; it stays in report.json


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _confused(report: dict[str, Any]) -> dict[str, Any] | None:
    """The row whose confusion matrix report.md shows: the better AdaFocus, skip off."""
    rows = [r for r in report["rows"] if r["skip"] == "off"]
    ada = [r for r in rows if r["method"] in ("v1", "v2")] or rows
    return max(ada, key=lambda r: r["accuracy"]) if ada else None


def markdown(report: dict[str, Any]) -> str:
    """The tables and targets as Markdown (pasted into the README)."""
    chance, names = report["chance"], report["class_names"]
    lines = [f"Online evaluation of `{report['checkpoint']}` on {report['streams']} "
             f"({report['frames']} frames, {report['labelled_frames']} labelled, "
             f"{report['changes']} label changes), device {report['device']}.", "",
             f"Chance (always the majority class {chance['label']!r}): "
             f"{_percent(chance['accuracy'])}.", "",
             "| method | skip budget | accuracy | GFLOPs/frame | vs full-frame | "
             "median change delay | missed changes | frames skipped / glance-only |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        delay = (f"{r['median_delay_frames']:.0f} fr / {r['median_delay_s']:.2f} s"
                 if not math.isnan(r["median_delay_frames"]) else "-")
        if math.isinf(r["median_delay_all_frames"]):
            delay = f"never (noticed: {delay})"
        lines.append(
            f"| {r['title']} | {r['skip']} | {_percent(r['accuracy'])} | "
            f"{r['gflops_per_frame']:.4f} | {r['compute_vs_full_frame']:.3f} | {delay} | "
            f"{_percent(r['missed_fraction'])} | "
            f"{100 * r['skipped_fraction']:.0f}% / {100 * r['glance_fraction']:.0f}% |")
    off = [r for r in report["rows"] if r["skip"] == "off"]
    lines += ["", "Per-class accuracy (skipping off):", "",
              "| class | " + " | ".join(r["title"] for r in off) + " |",
              "|---|" + "---|" * len(off)]
    for k, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(_percent(r["per_class_accuracy"][k])
                                                 for r in off) + " |")
    shown = _confused(report)
    if shown is not None and len(names) <= MAX_CONFUSION_CLASSES:
        lines += ["", f"Confusion matrix of {shown['title']} (skipping off; rows: true class, "
                      "columns: published class, frames):", "",
                  "| true \\ published | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        lines += [f"| {name} | " + " | ".join(str(n) for n in counts) + " |"
                  for name, counts in zip(names, shown["confusion"], strict=True)]
    lines += ["", "Targets:", ""]
    for t in report["targets"]:
        lines.append(f"- {STATUS_WORDS[t['status']]}: {t['target']} ({t['detail']})")
    for note in report["notes"]:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Accuracy vs GFLOPs per frame, one line per method through its skip settings,
    and the chance level across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for method, title in METHOD_TITLES.items():
        rows = sorted((r for r in report["rows"] if r["method"] == method),
                      key=lambda r: r["gflops_per_frame"])
        if not rows:
            continue
        x = [r["gflops_per_frame"] for r in rows]
        y = [100 * r["accuracy"] for r in rows]
        ax.plot(x, y, marker="o", label=title)
        off = next(r for r in rows if r["skip"] == "off")
        ax.scatter([off["gflops_per_frame"]], [100 * off["accuracy"]], s=90,
                   facecolors="none", edgecolors="black", zorder=3)
    chance = report["chance"]
    if chance["accuracy"] is not None and not math.isnan(chance["accuracy"]):
        ax.axhline(100 * chance["accuracy"], color="grey", linestyle="--",
                   label=f"chance (majority class {chance['label']!r})")
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs (GMACs) per frame, log scale")
    ax.set_ylabel("per-frame accuracy of the current label (%)")
    ax.set_title("Online, causal test streams (circled: skipping off)")
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


def write_report(report: dict[str, Any], out: Path) -> None:
    """report.json, report.md and plot.png in `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    plot(report, out / "plot.png")


__all__ = ["METHOD_TITLES", "markdown", "plot", "write_report"]
