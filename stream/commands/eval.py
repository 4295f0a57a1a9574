"""`adafocus-stream eval [CHECKPOINT] [--data DIR]`: compare AdaFocus with its baselines
through the online path on held-out test streams (moving digits) or on every clip of
a labelled video folder; writes report.json, report.md and plot.png."""

from __future__ import annotations

import argparse
import sys

from stream.exitcodes import EXIT_USAGE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", default="builtin:digits",
                        help="checkpoint path or builtin:NAME (default builtin:digits); its "
                        "NAME.compare.pt beside it supplies the baselines")
    parser.add_argument("--out", default="runs/eval", help="output folder (default runs/eval)")
    parser.add_argument("--data", metavar="DIR",
                        help="a labelled video folder (clips + labels.csv, as for training) to "
                        "evaluate on, every clip whole; default: the moving-digits test streams")
    parser.add_argument("--streams", type=int, default=8,
                        help="moving-digits test streams (default 8; not with --data)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of each moving-digits stream (default 60; not with --data)")
    parser.add_argument("--fps", type=float, default=25.0,
                        help="stream rate; a folder's clips are sampled at it (default 25)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.2, 0.3, 0.5],
                        help="skip budgets to evaluate (default 0.2 0.3 0.5)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from adafocus.evaluate import EvalSettings, evaluate
    from adafocus.evaluate_report import STATUS_WORDS
    from adafocus.interface import CheckpointError

    if args.streams < 1 or args.seconds <= 0 or args.fps <= 0:
        print("adafocus-stream eval: --streams, --seconds and --fps must be positive",
              file=sys.stderr)
        return EXIT_USAGE
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = EvalSettings(streams=args.streams, seconds=args.seconds, fps=args.fps,
                            budgets=tuple(args.budgets), data=args.data)
    try:
        report = evaluate(args.checkpoint, args.out, settings, device=args.device,
                          progress=not args.no_progress)
    except (CheckpointError, ValueError) as exc:
        print(f"adafocus-stream eval: {exc}", file=sys.stderr)
        return EXIT_USAGE
    chance = report["chance"]
    print(f"chance (always {chance['label']!r}): {100 * (chance['accuracy'] or 0):.1f}%")
    for t in report["targets"]:
        print(f"{STATUS_WORDS[t['status']]}: {t['target']} ({t['detail']})")
    print(f"wrote {args.out}/report.json, report.md, plot.png")
    return 0
