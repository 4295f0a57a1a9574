"""`adafocus-stream`: one console script, one module per subcommand.

Each subcommand module (`stream/commands/NAME.py`) defines `configure(parser)`
and `run(args) -> int`, and keeps heavy imports (PyTorch, PyAV) inside `run`,
so `--help` and `subscribe` start without loading a model.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> one-line help; each lives in stream/commands/<name>.py
COMMANDS: dict[str, str] = {
    "run": "Run the pipeline described by a config file until SIGINT/SIGTERM.",
    "demo": "Run the pipeline on synthetic digit cameras and watch it live.",
    "proxy": "Fan the PUB sockets of many workers into one endpoint.",
    "subscribe": "Print results (and events) live from a publisher.",
    "streams": "List, add or remove streams of a running pipeline (its HTTP API).",
    "bench": "Measure real-time streams served vs the full-frame network.",
    "train": "Train AdaFocus and its baselines from a train config.",
    "eval": "Compare AdaFocus with its baselines online on test streams.",
    "export": "Write a synthetic scene as a labelled video folder (clips + labels.csv).",
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only the `chosen` subcommand's module is imported and
    configured, so one command's dependencies never break (or slow) another."""
    parser = argparse.ArgumentParser(
        prog="adafocus-stream",
        description="Real-time video recognition on live streams with online AdaFocus.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"stream.commands.{name}")
            module.configure(command)
            command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(chosen).parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
