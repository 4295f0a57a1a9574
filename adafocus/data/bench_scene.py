"""Benchmark of the moving-digits scene: render speed, and the readability claim
(at the glance resolution the digit is findable but hard to read; a full-res
patch reads it). Prints and writes a JSON file.

    python -m adafocus.data.bench_scene --out bench-moving-digits.json

Readability: classifiers fit on frames of train-split scenes, scored on
test-split scenes (unseen handwriting), from three views of the same frames:
the whole frame at glance resolution, the oracle low-res crop around the digit
(the best a glance could do if it knew where to look) and the full-resolution
patch around the digit (what the local network sees).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from adafocus.data.moving_digits import MovingDigitsScene


def render_speed(height: int, width: int, frames: int = 2000) -> dict[str, float]:
    scene = MovingDigitsScene(0, height, width)
    scene.frame(0)
    t0 = time.perf_counter()
    for i in range(frames):
        scene.frame(i)
    per_frame = (time.perf_counter() - t0) / frames
    t0 = time.perf_counter()
    for seed in range(1, 21):
        MovingDigitsScene(seed, height, width)
    build = (time.perf_counter() - t0) / 20
    return {"ms_per_frame": per_frame * 1e3, "ms_per_scene_build": build * 1e3}


def _sample(split: str, scenes: int, per_scene: int, first_seed: int,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(first_seed)
    frames, boxes, labels = [], [], []
    for k in range(scenes):
        scene = MovingDigitsScene(first_seed + k, split=split)
        for i in rng.integers(0, 100_000, per_scene):
            frames.append(scene.frame(int(i)))
            boxes.append(scene.digit_box(int(i)))
            labels.append(scene.label_at(int(i)))
    return np.stack(frames), np.array(boxes), np.array(labels)


def _views(frames: np.ndarray, boxes: np.ndarray, glance: int,
           patch: int) -> dict[str, np.ndarray]:
    """Whole frame at glance size, low-res oracle crop, full-res patch; flattened, 0..1."""
    import torch
    import torch.nn.functional as F

    scale = frames.shape[1] / glance
    small = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float(),
                          size=(glance, glance), mode="area").permute(0, 2, 3, 1).numpy()
    lp = int(round(patch / scale))
    big = np.pad(frames, ((0, 0), (patch // 2,) * 2, (patch // 2,) * 2, (0, 0)))
    low = np.pad(small, ((0, 0), (lp // 2,) * 2, (lp // 2,) * 2, (0, 0)))
    crops, low_crops = [], []
    for f, s, (x0, y0, x1, y1) in zip(big, low, boxes, strict=True):
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        crops.append(f[cy:cy + patch, cx:cx + patch])
        lx, ly = int(cx / scale), int(cy / scale)
        low_crops.append(s[ly:ly + lp, lx:lx + lp])
    return {f"glance {glance}x{glance} whole frame": small.reshape(len(frames), -1) / 255,
            f"glance {glance}x{glance} crop at the digit (oracle)":
                np.stack(low_crops).reshape(len(frames), -1) / 255,
            f"full-res {patch}x{patch} patch at the digit":
                np.stack(crops).reshape(len(frames), -1).astype(np.float32) / 255}


def readability(scenes: int = 200, per_scene: int = 20, glance: int = 32,
                patch: int = 40) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    train_frames, train_boxes, y_train = _sample("train", scenes, per_scene, 0)
    test_frames, test_boxes, y_test = _sample("test", scenes // 4, per_scene, 0)
    train = _views(train_frames, train_boxes, glance, patch)
    test = _views(test_frames, test_boxes, glance, patch)
    results: dict[str, dict[str, float]] = {}
    for view, x_train in train.items():
        x_test = test[view]
        x_train, x_test = (x - x.mean(axis=1, keepdims=True) for x in (x_train, x_test))
        results[view] = {}
        for name, clf in (("logistic", LogisticRegression(max_iter=300, C=0.1)),
                          ("mlp256", MLPClassifier((256,), max_iter=200, early_stopping=True,
                                                   random_state=0))):
            clf.fit(x_train, y_train)
            results[view][name] = float(clf.score(x_test, y_test))
            print(f"{view:45s} {name:9s} test accuracy {results[view][name]:.3f}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-moving-digits.json")
    parser.add_argument("--scenes", type=int, default=200, help="train scenes (test: a quarter)")
    parser.add_argument("--skip-readability", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, object] = {"render": {}}
    for h, w in ((128, 128), (128, 224), (256, 256)):
        report["render"][f"{h}x{w}"] = speed = render_speed(h, w)
        print(f"render {h}x{w}: {speed['ms_per_frame']:.3f} ms/frame, "
              f"{speed['ms_per_scene_build']:.2f} ms/scene build", flush=True)
    if not args.skip_readability:
        report["readability"] = readability(args.scenes)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
