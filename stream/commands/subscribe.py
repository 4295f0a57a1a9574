"""`adafocus-stream subscribe ENDPOINT`: watch results live, or pipe them as JSON.

One line per message, readable by default and one JSON object per line with
`--json`, flushed as it arrives so `| jq` or `| tee` see results in real time.
Exit status: 0 once `--count` messages arrived (or, without `--count`, when
`--timeout` ends a run that received something); 1 when `--timeout` passes
before that; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from stream.client import CurveClient, Message, Subscriber


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", metavar="ENDPOINT", help="e.g. tcp://127.0.0.1:5556")
    parser.add_argument(
        "--stream",
        action="append",
        metavar="ID",
        dest="streams",
        help="only this stream id (repeatable; default all)",
    )
    parser.add_argument("--events", action="store_true", help="also show stream state changes")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=_positive_int, metavar="N", help="stop after N messages")
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="stop when no message arrives for S seconds"
    )
    parser.add_argument(
        "--curve-key",
        type=Path,
        metavar="FILE",
        help="this client's CURVE certificate (.key_secret)",
    )
    parser.add_argument(
        "--curve-server-key",
        type=Path,
        metavar="FILE",
        help="the publisher's CURVE public key (.key)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def format_message(message: Message) -> str:
    """One human-readable line."""
    p = message.payload
    if message.kind == "event":
        when = _clock(p["t"])
        detail = f": {p['detail']}" if p["detail"] else ""
        return f"{when} {message.stream} event {p['state']}{detail}"
    patch = "-" if p["patch"] is None else "[" + ",".join(f"{v:.2f}" for v in p["patch"]) + "]"
    line = (
        f"{_clock(p['t_publish'])} {message.stream} seq={p['seq']} label={p['label']} "
        f"score={p['score']:.2f} skipped={'yes' if p['skipped'] else 'no'} patch={patch} "
        f"gflops={p['gflops']:.3f}/{p['gflops_full']:.3f}"
    )
    if p.get("truth") is not None:
        line += f" truth={p['truth']}"
    return line


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def _json(message: Message) -> str:
    record: dict[str, Any] = {"kind": message.kind, **message.payload}
    return json.dumps(record, separators=(",", ":"))


def _curve(args: argparse.Namespace) -> CurveClient | None:
    if (args.curve_key is None) != (args.curve_server_key is None):
        raise SystemExit("subscribe: --curve-key and --curve-server-key go together")
    if args.curve_key is None:
        return None
    return CurveClient(args.curve_key, args.curve_server_key)


def run(args: argparse.Namespace) -> int:
    render = _json if args.json else format_message
    received = 0
    try:
        with Subscriber(
            args.endpoint, args.streams, args.events, _curve(args), args.timeout
        ) as sub:
            for message in sub:
                print(render(message), flush=True)
                received += 1
                if args.count is not None and received >= args.count:
                    return 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `| head` closed the pipe, which is the reader's choice; point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.count is None and received > 0:
        return 0
    print(f"subscribe: no message for {args.timeout:g} s ({received} received)", file=sys.stderr)
    return 1
