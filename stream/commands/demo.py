"""`adafocus-stream demo`: the whole pipeline on synthetic digit cameras, watched
from the outside.

It runs the real supervisor (in a child process, exactly as `run` would) on 2-3
`synthetic://digits` cameras with the shipped `builtin:digits` model, then
subscribes to the public PUB socket with `stream.client` like any user would,
and prints each camera's live label next to the true digit with a running
accuracy and the compute saved against the full-frame network. Metrics and
health are served as usual. Ctrl-C (or `--duration`) stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stream.config import ConfigError, PipelineConfig, default_demo_config, parse_config
from stream.exitcodes import EXIT_USAGE

DEFAULT_CHECKPOINT = "builtin:digits"
TRAIN_CONFIG = "adafocus/configs/digits-tiny.yaml"  # writes adafocus/checkpoints/digits.pt


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, metavar="S", help="stop after S seconds (default: Ctrl-C)"
    )
    parser.add_argument("--cameras", type=int, default=3, choices=range(1, 9), metavar="N",
                        help="synthetic cameras (1-8, default 3)")
    parser.add_argument("--fps", type=float, default=25.0, help="camera frame rate (default 25)")
    parser.add_argument("--checkpoint", default=None,
                        help=f"path or builtin:NAME (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--skip-mode", default="confidence", choices=("off", "confidence"),
                        help="adaptive frame skipping (default confidence)")
    parser.add_argument("--publish", default="tcp://127.0.0.1:5556", help="results endpoint")
    parser.add_argument("--metrics", default="127.0.0.1:9108", help="HOST:PORT for /metrics")
    parser.add_argument("--every", type=float, default=0.5, metavar="S",
                        help="print each camera's label at most every S seconds (default 0.5)")
    parser.add_argument("--verbose", action="store_true", help="show the pipeline's log")


def demo_config(args: argparse.Namespace) -> PipelineConfig:
    """The demo's pipeline (stream.config's default_demo_config) with the command
    line's choices, validated like any config file."""
    cameras = default_demo_config(args.cameras).streams
    return parse_config({
        "model": {
            "checkpoint": args.checkpoint or DEFAULT_CHECKPOINT,
            "device": args.device,
            "skip": {"mode": args.skip_mode},
        },
        "streams": [{"id": s.id, "uri": _with_fps(s.uri, args.fps)} for s in cameras],
        "publish": {"bind": args.publish},
        "metrics": {"bind": args.metrics},
    })


def _with_fps(uri: str, fps: float) -> str:
    parts = urlsplit(uri)
    query = {**dict(parse_qsl(parts.query)), "fps": f"{fps:g}"}
    return urlunsplit(parts._replace(query=urlencode(query)))


def serve(config: PipelineConfig, log_level: int) -> None:
    """Process target: the supervisor, as `adafocus-stream run` would run it."""
    from stream.commands.run import setup_logging, supervise
    from stream.serve.children import die_with_parent

    setup_logging(logging.getLevelName(log_level))
    die_with_parent()  # a killed demo takes its pipeline with it
    sys.exit(supervise(config, "adafocus-stream demo"))


@dataclass
class _Camera:
    labels: int = 0
    judged: int = 0
    correct: int = 0
    gflops: float = 0.0
    gflops_full: float = 0.0
    printed_at: float = 0.0


class Tally:
    """Running accuracy (labels that match the camera's true digit) and compute
    saving (1 - spent / full-frame), per camera and overall."""

    def __init__(self) -> None:
        self.cameras: dict[str, _Camera] = {}

    def add(self, payload: dict[str, Any]) -> _Camera:
        cam = self.cameras.setdefault(payload["stream"], _Camera())
        cam.labels += 1
        cam.gflops += payload["gflops"]
        cam.gflops_full += payload["gflops_full"]
        if payload.get("truth") is not None:
            cam.judged += 1
            cam.correct += payload["label"] == payload["truth"]
        return cam

    def _sum(self, field: str) -> float:
        return sum(getattr(c, field) for c in self.cameras.values())

    @property
    def accuracy(self) -> float | None:
        judged = self._sum("judged")
        return self._sum("correct") / judged if judged else None

    @property
    def saving(self) -> float | None:
        full = self._sum("gflops_full")
        return 1.0 - self._sum("gflops") / full if full else None

    def summary(self) -> str:
        acc, saving = self.accuracy, self.saving
        return (
            f"{int(self._sum('labels'))} labels from {len(self.cameras)} camera(s); "
            f"accuracy {_pct(acc)}; compute saving {_pct(saving)}"
        )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_label(payload: dict[str, Any], tally: Tally) -> str:
    truth = payload.get("truth")
    verdict = "  " if truth is None else ("ok" if payload["label"] == truth else "--")
    skipped = " (carried)" if payload["skipped"] else ""
    return (
        f"{payload['stream']:>8} seq={payload['seq']:>6} label={payload['label']:<3} "
        f"score={payload['score']:.2f} truth={truth if truth is not None else '?':<3} {verdict}"
        f"  | accuracy {_pct(tally.accuracy):>6}  saving {_pct(tally.saving):>6}{skipped}"
    )


def _no_model(error: ConfigError, args: argparse.Namespace) -> bool:
    """True when the only problem is that the default model is not installed yet."""
    return args.checkpoint is None and str(error).startswith("model.checkpoint:")


def run(args: argparse.Namespace) -> int:
    try:
        config = demo_config(args)
    except ConfigError as exc:
        if _no_model(exc, args):
            print(
                f"no model yet: {DEFAULT_CHECKPOINT} is not installed. Train it with "
                f"`adafocus-stream train {TRAIN_CONFIG}` or pass --checkpoint PATH."
            )
            return 0
        print(f"adafocus-stream demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from stream.client import Subscriber

    level = logging.INFO if args.verbose else logging.WARNING
    supervisor = multiprocessing.get_context("spawn").Process(
        target=serve, args=(config, level), name="adafocus-supervisor"
    )
    supervisor.start()
    print(
        f"demo: {len(config.streams)} synthetic camera(s), model {config.model.checkpoint}; "
        f"results on {config.publish.bind}, metrics on http://{config.metrics.bind}/metrics. "
        "Ctrl-C stops.",
        flush=True,
    )
    tally = Tally()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        with Subscriber(config.publish.bind, events=True) as subscriber:
            while supervisor.is_alive() and (deadline is None or time.monotonic() < deadline):
                message = subscriber.recv(timeout=0.2)
                if message is None:
                    continue
                if message.kind == "event":
                    p = message.payload
                    print(f"{p['stream']:>8} [{p['state']}] {p['detail']}", flush=True)
                    continue
                camera = tally.add(message.payload)
                now = time.monotonic()
                if now - camera.printed_at >= args.every:
                    camera.printed_at = now
                    print(format_label(message.payload, tally), flush=True)
    except KeyboardInterrupt:
        pass  # the supervisor got the same Ctrl-C and is stopping
    finally:
        _stop(supervisor)
    print(f"demo: {tally.summary()}", flush=True)
    code = supervisor.exitcode
    return code if code is not None and code >= 0 else 1


def _stop(supervisor: multiprocessing.process.BaseProcess) -> None:
    if supervisor.is_alive():
        supervisor.terminate()  # SIGTERM: the supervisor's orderly stop
    supervisor.join(15)
    if supervisor.is_alive():
        supervisor.kill()
        supervisor.join()
