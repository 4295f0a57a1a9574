"""Recorded streams: one fixed scenario of online steps whose results were written
down once, so a rewrite of the runtime can prove it answers exactly as before.

The scenario is what the worker puts a model through: five moving-digits test
streams advancing in random subsets (a stream misses ticks, as when the worker
drops stale frames), one stream reset (a reconnect), one dropped and rejoining
under its id, and four models: the shipped AdaFocus with calibrated skipping,
the same with looser thresholds (so all three actions occur), without skipping,
and the trained full-frame baseline. Everything is seeded; the frames are the scene's pure
function of (seed, index).

    python -m tests.support.recorded --write     # record (only when the behaviour may change)

`tests/unit/test_recorded_steps.py` replays it and compares result by result.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import ROOT

RECORDING = ROOT / "tests" / "data" / "recorded_steps.json"
STREAMS, STEPS, SIZE = 5, 60, (128, 128)
RESET_AT, DROP_AT, REJOIN_AT = 25, 35, 45  # steps: reset s1, drop s2, s2 back


def models(**runtime: Any) -> dict[str, Any]:
    """The four online models of the scenario, on the CPU, with the online runtime's
    options `runtime` (e.g. pad_batches)."""
    from adafocus.baselines import OnlineBaseline
    from adafocus.checkpoint import load_checkpoint
    from adafocus.loading import load_online
    from adafocus.skip import SkipThresholds
    from adafocus.train.comparisons import load_comparisons

    checkpoint = ROOT / "adafocus" / "checkpoints" / "digits.pt"
    _, methods = load_comparisons(checkpoint.with_suffix(".compare.pt"))
    full = methods["full_frame"]
    skip = load_online(str(checkpoint), device="cpu", skip_mode="confidence", budget=0.3,
                       **runtime)
    # looser thresholds than the calibration's, so that "glance" occurs too
    glance = load_online(str(checkpoint), device="cpu", skip_mode="confidence", budget=0.3,
                         **runtime)
    glance.skip = SkipThresholds(pixel_change=1.2, glance_change=0.15, confidence=0.2,
                                 max_span=5)
    return {
        "adafocus_skip": skip,
        "adafocus_glance": glance,
        "adafocus": load_online(str(checkpoint), device="cpu", skip_mode="off", **runtime),
        "full_frame": OnlineBaseline(full.model, skip.class_names,
                                     load_checkpoint(checkpoint).normalization, full.costs,
                                     device="cpu", **runtime),
    }


def replay(model: Any, frame: Callable[[int, int], np.ndarray] | None = None
           ) -> list[list[dict[str, Any]]]:
    """Step `model` through the scenario; per step, one plain dict per result."""
    from adafocus.data.moving_digits import MovingDigitsScene

    if frame is None:
        scenes = [MovingDigitsScene(seed, *SIZE, split="test") for seed in range(STREAMS)]

        def frame(stream: int, index: int) -> np.ndarray:
            return scenes[stream].frame(index)

    rng = random.Random(15)
    position = [0] * STREAMS
    steps = []
    for step in range(STEPS):
        if step == RESET_AT:
            model.reset("s1")
        if step == DROP_AT:
            model.drop("s2")
        present = [k for k in range(STREAMS) if not DROP_AT <= step < REJOIN_AT or k != 2]
        batch = sorted(rng.sample(present, rng.randint(1, len(present))))
        for k in batch:
            position[k] += rng.choice((1, 1, 1, 2))  # sometimes a frame is missed
        frames = np.stack([frame(k, position[k]) for k in batch])
        results = model.step(frames, [f"s{k}" for k in batch])
        steps.append([{"stream": f"s{k}", "index": position[k], **_plain(r)}
                      for k, r in zip(batch, results, strict=True)])
    return steps


def _plain(result: Any) -> dict[str, Any]:
    return {"class_id": result.class_id, "label": result.label, "score": result.score,
            "topk": [[name, p] for name, p in result.topk],
            "patch": None if result.patch is None else list(result.patch),
            "skipped": result.skipped, "action": result.action, "gflops": result.gflops,
            "gflops_full": result.gflops_full}


def record() -> dict[str, Any]:
    return {name: replay(model) for name, model in models().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {RECORDING}")
    args = parser.parse_args()
    data = record()
    actions = {name: sorted({r["action"] for step in steps for r in step})
               for name, steps in data.items()}
    print(f"actions per model: {actions}")
    if args.write:
        RECORDING.parent.mkdir(parents=True, exist_ok=True)
        RECORDING.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
        print(f"wrote {Path(RECORDING).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
