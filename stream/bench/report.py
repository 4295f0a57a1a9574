"""The bench's outputs: one JSON file (everything measured), a Markdown table (the
README's Performance section) and PNG plots (cost growth with streams; capacity).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

UNTRAINED = "untrained: throughput only"


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def capacity_text(row: dict[str, Any]) -> str:
    """"12" (exact), ">= 64" (never failed), "8-15" (search cut short)."""
    lo, hi = row["capacity"], row["capacity_upper"]
    if hi is None:
        return f">= {lo}"
    if row["capacity_exact"] or hi - lo <= 1:
        return str(lo)
    return f"{lo} (< {hi})"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        format(value, fmt))


def markdown(report: dict[str, Any]) -> str:
    """The Performance section: machine, command, one table, the ratios, notes."""
    m, s = report["machine"], report["settings"]
    cuda = s["device"].startswith("cuda")
    lines = [
        f"Measured by `{report['command']}` on {m['description']} "
        f"(load average {m['load_avg_start'][0]:.2f} at start, {m['load_avg_end'][0]:.2f} at end"
        f"; {m['torch']}).",
        "",
        f"Each probe runs the whole pipeline (supervisor, producer processes decoding H.264 "
        f"clips of the moving-digits scene ({s['video']}, encoded at each source resolution) "
        f"at 25 fps in real time, frame rings, the inference worker, the ZeroMQ publisher) "
        f"and a subscriber, for a {s['window_s']:g} s window after {s['warmup_s']:g} s of "
        "warm-up. A count of streams is served in real time when the published labels show "
        "< 1% dropped frames, no growing lag and sources at their native rate.",
        "",
        "| source | variant | real-time 25 fps streams | % of decode ceiling | at load: streams "
        "| latency p50 / p95 / p99 (ms) | compute saved | accuracy | CPU ms per frame: decode "
        "/ ring / model / publish | mean batch |" + (" GPU MiB |" if cuda else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if cuda else ""),
    ]
    for row in report["variants"]:
        at = row.get("at_load") or {}
        lat = at.get("latency_ms", {})
        cpu = at.get("cpu_ms_per_frame", {})
        acc = at.get("accuracy")
        accuracy = "n/a" if not at else f"{UNTRAINED}" if not row["trained"] else (
            "n/a" if acc is None else f"{100 * acc:.1f}%")
        real = "" if at.get("ok") or not at else " (not real time)"
        share = row.get("ceiling_share")
        cells = [
            row["source"],
            f"`{row['name']}`",
            capacity_text(row),
            "n/a" if share is None else f"{100 * share:.0f}%",
            f"{at.get('streams', 'n/a')}{real}",
            " / ".join(_num(lat.get(k), ".0f") for k in ("p50", "p95", "p99")),
            "n/a" if "compute_saved" not in at else f"{round(100 * at['compute_saved']) or 0}%",
            accuracy,
            " / ".join(_num(cpu.get(k), ".2f") for k in ("decode", "ring", "model", "publish")),
            _num(at.get("worker", {}).get("batch_mean"), ".1f"),
        ]
        if cuda:
            cells.append(_num(at.get("gpu_memory_mb"), ".0f"))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for key, summary in report["presets"].items():
        ratio = summary.get("skip_vs_full_streams")
        gap = summary.get("accuracy_gap_points")
        share = summary.get("ceiling_share", {}).get("adafocus_skip")
        lines.append(
            f"- `{key}`: AdaFocus with skipping serves "
            f"{'n/a' if ratio is None else f'{ratio:.1f}x'} the real-time streams of the "
            f"full-frame network"
            + ("" if gap is None else f", at {gap:+.1f} accuracy points")
            + ("" if share is None else f", {100 * share:.0f}% of the decode ceiling") + ".")
    lines += ["", *[f"- {note}" for note in report["notes"]], ""]
    return "\n".join(lines)


def plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """cost_vs_streams.png (CPU cores used, CPU per frame and p95 latency against the
    stream count, per variant; hollow markers: not real time) and capacity.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for row in report["variants"]:
        probes = sorted(row["probes"], key=lambda p: p["streams"])
        probes = [p for p in probes if "cpu_cores" in p]
        if not probes:
            continue
        x = [p["streams"] for p in probes]
        series = ([p["cpu_cores"] for p in probes],
                  [p["cpu_ms_per_frame"].get("total", math.nan) for p in probes],
                  [p["latency_ms"]["p95"] for p in probes])
        for ax, y in zip(axes, series, strict=True):
            (line,) = ax.plot(x, y, "-", label=f"{row['name']} @ {row['source']}", alpha=0.8)
            for xi, yi, p in zip(x, y, probes, strict=True):
                ax.plot(xi, yi, "o", color=line.get_color(),
                        markerfacecolor=line.get_color() if p["ok"] else "none")
    titles = ("CPU cores used by the pipeline", "CPU ms per processed frame",
              "p95 latency, capture to subscriber (ms)")
    counts = sorted({p["streams"] for row in report["variants"] for p in row["probes"]})
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts or [1])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("streams (25 fps each)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    for ax in axes[1:]:  # per-frame costs and latencies span orders of magnitude
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
    axes[0].legend(fontsize=8)
    fig.suptitle(f"adafocus-stream bench on {report['machine']['description']} "
                 "(filled: real time, hollow: not)")
    fig.tight_layout()
    cost = out_dir / "cost_vs_streams.png"
    fig.savefig(cost, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.35 * len(report["variants"])))
    names = [f"{row['name']} @ {row['source']}" for row in report["variants"]]
    ax.barh(names, [row["capacity"] for row in report["variants"]], color="tab:blue")
    ax.set_xlabel("largest number of 25 fps streams served in real time")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    capacity = out_dir / "capacity.png"
    fig.savefig(capacity, dpi=110)
    plt.close(fig)
    return [cost, capacity]
