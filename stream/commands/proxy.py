"""`adafocus-stream proxy`: run the fan-in proxy (stream.wire.proxy) until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

import zmq

from stream.exitcodes import EXIT_USAGE
from stream.wire.proxy import (
    DEFAULT_BIND,
    DEFAULT_RESOLVE_INTERVAL_S,
    CurveKeys,
    FanInProxy,
    ProxyError,
)

log = logging.getLogger("adafocus.proxy")


def _endpoint_list(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        action="append",
        required=True,
        metavar="ENDPOINT",
        help="a worker's PUB endpoint, e.g. tcp://worker-0:5556; repeat or comma-separate. "
        "A DNS name is re-resolved periodically and every address it names is used.",
    )
    parser.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        help=f"endpoint subscribers connect to (default {DEFAULT_BIND})",
    )
    parser.add_argument(
        "--resolve-interval",
        type=float,
        default=DEFAULT_RESOLVE_INTERVAL_S,
        metavar="SECONDS",
        help="how often DNS names are re-resolved (default %(default)s)",
    )
    parser.add_argument("--hwm", type=int, default=10_000, help="queue limit per peer")
    parser.add_argument("--curve-server-key", type=Path, help="workers' public key file")
    parser.add_argument("--curve-client-key", type=Path, help="the proxy's key pair file")
    parser.add_argument("--curve-secret-key", type=Path, help="key pair served to subscribers")
    parser.add_argument(
        "--curve-authorized-clients", type=Path, help="directory of subscriber public keys"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s proxy %(levelname)s %(message)s")
    if args.resolve_interval <= 0:
        log.error("--resolve-interval must be positive")
        return EXIT_USAGE
    curve = CurveKeys(
        server_public=args.curve_server_key,
        client_cert=args.curve_client_key,
        secret_cert=args.curve_secret_key,
        authorized_clients=args.curve_authorized_clients,
    )
    context = zmq.Context()
    try:
        proxy = FanInProxy(
            context,
            _endpoint_list(args.connect),
            bind=args.bind,
            resolve_interval_s=args.resolve_interval,
            hwm=args.hwm,
            curve=curve,
        )
    except ProxyError as exc:
        log.error("%s", exc)
        context.term()
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("serving subscribers on %s", proxy.frontend_endpoint)
    try:
        proxy.serve(stop)
    finally:
        proxy.close()
        context.term()
    log.info("stopped")
    return 0
