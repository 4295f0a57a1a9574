"""Offline accuracy of the bench's models on the bench's own clips, as rendered
and as decoded.

    python -m stream.bench.clip_accuracy [--clips 3] [--frames 1500]
        [--clip-seconds 150] [--out FILE]

Why: the pipeline bench judges accuracy live, where a gap between two variants
could come from the model, from H.264 or from skipping. Here each variant of the
tiny preset (the trained full-frame network, AdaFocus, AdaFocus with skipping at
the calibrated budget) steps causally, one stream at a time and without a
pipeline, through the first `--frames` frames of the bench's clips twice: as
rendered, and as decoded from the encoded clip through the live path's resize.
`--clip-seconds` names the cached clips (the bench's own value reuses them).

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


def accuracy(variant, frames: np.ndarray, truth: np.ndarray) -> float:
    """Share of frames whose label is the truth, stepping one stream causally."""
    from adafocus.loading import load_online

    model = load_online(variant.model_file, device="cpu", skip_mode=variant.skip_mode,
                        budget=variant.budget)
    predicted = [model.step(frame[None], ["clip"])[0].class_id for frame in frames]
    return float((np.asarray(predicted) == truth).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="builtin:digits")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--clip-seconds", type=float, default=90.0)
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
    rows: list[dict[str, Any]] = []
    for clip in clips:
        truth = clip.labels[:args.frames].astype(np.int64)
        sources = {"rendered": np.stack([clip.rendered(i) for i in range(args.frames)]),
                   "decoded": decoded(clip, args.frames)}
        for source, frames in sources.items():
            for variant in variants:
                row = {"clip": clip.path.name, "source": source, "variant": variant.name,
                       "accuracy": accuracy(variant, frames, truth)}
                rows.append(row)
                print(f"seed {clip.seed} {source:8s} {variant.name:20s} "
                      f"{100 * row['accuracy']:.1f}%", flush=True)
    means = {f"{v.name} {s}": float(np.mean([r["accuracy"] for r in rows
                                            if r["variant"] == v.name and r["source"] == s]))
             for v in variants for s in ("rendered", "decoded")}
    print("\nmean over the clips:")
    for key, value in means.items():
        print(f"  {key:32s} {100 * value:.1f}%")
    report = {"command": "python -m stream.bench.clip_accuracy " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                  if k not in ("out", "cache_dir")),
              "machine": f"{cpu_name()}, torch {torch.__version__}",
              "rows": rows, "means": means}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
