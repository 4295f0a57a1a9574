"""`adafocus-stream eval [CHECKPOINT]`: compare AdaFocus with its baselines on held-out
test streams through the online path; writes report.json, report.md and plot.png."""

from __future__ import annotations

import argparse
import sys

from stream.exitcodes import EXIT_USAGE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", default="builtin:digits",
                        help="checkpoint path or builtin:NAME (default builtin:digits); its "
                        "NAME.compare.pt beside it supplies the baselines")
    parser.add_argument("--out", default="runs/eval", help="output folder (default runs/eval)")
    parser.add_argument("--streams", type=int, default=8, help="test streams (default 8)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of each stream (default 60)")
    parser.add_argument("--fps", type=float, default=25.0, help="stream rate (default 25)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.2, 0.3, 0.5],
                        help="skip budgets to evaluate (default 0.2 0.3 0.5)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from adafocus.evaluate import EvalSettings, evaluate
    from adafocus.interface import CheckpointError

    if args.streams < 1 or args.seconds <= 0 or args.fps <= 0:
        print("adafocus-stream eval: --streams, --seconds and --fps must be positive",
              file=sys.stderr)
        return EXIT_USAGE
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = EvalSettings(streams=args.streams, seconds=args.seconds, fps=args.fps,
                            budgets=tuple(args.budgets))
    try:
        report = evaluate(args.checkpoint, args.out, settings, device=args.device,
                          progress=not args.no_progress)
    except (CheckpointError, ValueError) as exc:
        print(f"adafocus-stream eval: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for t in report["targets"]:
        print(f"{'met' if t['met'] else 'MISSED'}: {t['target']} ({t['detail']})")
    print(f"wrote {args.out}/report.json, report.md, plot.png")
    return 0
