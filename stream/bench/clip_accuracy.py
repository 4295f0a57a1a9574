"""Offline accuracy of the bench's models on the bench's own clips, as rendered
and as decoded, and each variant's gap to the full-frame network with its spread.

    python -m stream.bench.clip_accuracy [--clips 8] [--frames 1500]
        [--clip-seconds 150] [--first-seconds 12] [--out FILE]

Why: the pipeline bench judges accuracy live, where a gap between two variants
could come from the model, from H.264 or from skipping, and each variant is judged
on a few seconds of a few streams. Here each variant of the tiny preset (the
trained full-frame network, AdaFocus, AdaFocus with skipping at the calibrated
budget) steps causally through the first `--frames` frames of every clip (the
clips are the streams of one batch, as in the worker; a stream's result does not
depend on its batch), twice: as rendered, and as decoded from the encoded clip
through the live path's resize. `--clip-seconds` names the cached clips (the
bench's own value reuses them).

Accuracy differs a lot from one clip to the next (a policy that loses the digit
in one scene costs that clip tens of points), so a gap measured on a few clips
says little. Each variant's gap to the full-frame network is therefore paired
per clip (same frames), and given with a 95% bootstrap interval over the clips.
Every figure is given twice: over the `--frames` frames, and over the clips'
first `--first-seconds` alone, which is about what the live bench's fixed-load
probe judges (each of its streams plays its clip from the first frame; the
default is the bench's warm-up plus window).

Prints a table and writes the figures to a JSON file; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def decoded(clip, frames: int) -> np.ndarray:
    """The clip's first frames as the live path delivers them (PyAV, FrameResizer)."""
    import av

    from adafocus import FrameResizer

    height, width = clip.size
    resize, out = FrameResizer(height, width), []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            out.append(resize(frame).copy())
            if len(out) == frames:
                break
    return np.stack(out)


def correct(variant, frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(clips, T) bool: whether each frame's label is the truth, with frames (clips, T,
    H, W, 3) stepped causally, frame t of every clip in one batch."""
    from adafocus.loading import load_online

    model = load_online(variant.model_file, device="cpu", skip_mode=variant.skip_mode,
                        budget=variant.budget)
    streams = list(range(len(frames)))
    predicted = np.array([[r.class_id for r in model.step(frames[:, t], streams)]
                          for t in range(frames.shape[1])]).T
    return predicted == truth


def paired_gap(accuracy: np.ndarray, baseline: np.ndarray, resamples: int = 10_000,
               seed: int = 0) -> dict[str, float]:
    """Mean per-clip difference in points, and its 95% percentile-bootstrap interval
    over the clips (seeded: the same figures on every run)."""
    diff = 100 * (np.asarray(accuracy) - np.asarray(baseline))
    draws = np.random.default_rng(seed).integers(0, len(diff), (resamples, len(diff)))
    low, high = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
    return {"mean": float(diff.mean()), "ci95": [float(low), float(high)],
            "per_clip": diff.round(2).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="builtin:digits")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--clip-seconds", type=float, default=90.0)
    parser.add_argument("--first-seconds", type=float, default=12.0,
                        help="also report the clips' first seconds alone: what the live "
                             "bench's fixed-load probe judges (default: its warm-up + window)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="the bench's cache (default: the bench's default)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/clip_accuracy.json"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from adafocus.machine import cpu_name
    from stream.bench.media import scene_clips
    from stream.bench.models import prepare_variants
    from stream.commands.bench import default_cache

    cache_dir = args.cache_dir or default_cache()
    cache_dir.mkdir(parents=True, exist_ok=True)
    variants = prepare_variants(cache_dir, args.checkpoint, ("tiny",))
    clips = scene_clips(cache_dir, args.clips, args.clip_seconds, variants[0].frame_size)
    if args.frames > len(clips[0].labels):
        parser.error(f"--frames {args.frames} is longer than the clips "
                     f"({len(clips[0].labels)} frames)")
    if not 0 < args.first_seconds * clips[0].fps <= args.frames:
        parser.error(f"--first-seconds {args.first_seconds:g} is not within --frames")
    truth = np.stack([clip.labels[:args.frames] for clip in clips]).astype(np.int64)
    sources = {"rendered": lambda clip: np.stack([clip.rendered(i) for i in range(args.frames)]),
               "decoded": lambda clip: decoded(clip, args.frames)}
    spans = {"whole": args.frames,
             f"first {args.first_seconds:g} s": round(args.first_seconds * clips[0].fps)}
    rows: list[dict[str, Any]] = []
    means: dict[str, float] = {}
    gaps: dict[str, dict[str, Any]] = {}
    for source, frames_of in sources.items():
        frames = np.stack([frames_of(clip) for clip in clips])
        hits = {v.name: correct(v, frames, truth) for v in variants}
        for span, length in spans.items():
            baseline = hits[variants[0].name][:, :length].mean(axis=1)  # the full-frame network
            for variant in variants:
                acc = hits[variant.name][:, :length].mean(axis=1)
                means[f"{variant.name} {source}, {span}"] = float(acc.mean())
                rows += [{"clip": clip.path.name, "seed": clip.seed, "source": source,
                          "span": span, "variant": variant.name, "accuracy": float(a)}
                         for clip, a in zip(clips, acc, strict=True)]
                line = f"{source:8s} {span:12s} {variant.name:20s} {100 * acc.mean():5.1f}%"
                if variant is not variants[0]:
                    gap = paired_gap(acc, baseline)
                    gaps.setdefault(variant.name, {})[f"{source}, {span}"] = gap
                    line += (f"  vs {variants[0].name}: {gap['mean']:+5.1f} points (95% interval "
                             f"{gap['ci95'][0]:+.1f} to {gap['ci95'][1]:+.1f})")
                print(line + "  per clip: " + " ".join(f"{100 * a:.0f}" for a in acc),
                      flush=True)
    report = {"command": "python -m stream.bench.clip_accuracy " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                  if k not in ("out", "cache_dir")),
              "machine": f"{cpu_name()}, torch {torch.__version__}",
              "rows": rows, "means": means, "gaps_vs_full_frame_points": gaps}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
