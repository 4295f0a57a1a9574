"""`adafocus-stream train CONFIG [--init CKPT]`: train AdaFocus (and the evaluation
baselines) from a YAML train config, from random weights or a checkpoint's; resumes
automatically from the run's saved state."""

from __future__ import annotations

import argparse
import sys

from stream.exitcodes import EXIT_USAGE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="train config YAML, e.g. adafocus/configs/digits-tiny.yaml")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default: seeded and deterministic), cuda, cuda:N or auto")
    parser.add_argument("--output", help="checkpoint path (default: the config's "
                        "output.checkpoint); NAME.compare.pt is written beside it")
    parser.add_argument("--init", metavar="CKPT",
                        help="start every model from this checkpoint (path or builtin:NAME) "
                        "instead of the config's model.init; heads are re-initialised when "
                        "its classes differ from the data's")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own)")
    parser.add_argument("--restart", action="store_true",
                        help="discard the saved training state of this output and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from adafocus.data.video_folder import DatasetError
    from adafocus.interface import CheckpointError
    from adafocus.models.pretrained import WeightsError
    from adafocus.runtime import resolve_device
    from adafocus.train import ResumeError, TrainConfigError, load_train_config, train
    from adafocus.train.config import with_init

    try:
        cfg = load_train_config(args.config)
        if args.init is not None:
            cfg = with_init(cfg, args.init)
        resolve_device(args.device)
    except (TrainConfigError, ValueError) as exc:
        print(f"adafocus-stream train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = train(cfg, device=args.device, output=args.output, restart=args.restart,
                       progress=not args.no_progress)
    except (ResumeError, DatasetError, CheckpointError, WeightsError, TrainConfigError) as exc:
        print(f"adafocus-stream train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"trained in {result.seconds:.0f} s; shipped {result.shipped} -> {result.checkpoint}")
    return 0
