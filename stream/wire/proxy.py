"""The fan-in proxy: one endpoint for subscribers in front of many workers.

With streams sharded over several workers, every worker publishes its own
streams on its own PUB socket. The proxy connects an XSUB socket to all of them
and re-publishes on one XPUB socket, so a subscriber connects once and sees every
stream. Subscriptions travel the other way: a subscriber's topic prefix reaches
the workers, which then filter at the source.

Workers come and go (a pod restarts with a new address, a StatefulSet scales).
ZeroMQ reconnects to an address it knows by itself; what it cannot do is learn
new addresses. So an endpoint may name a DNS host (a Kubernetes headless Service
resolves to every worker pod): the proxy re-resolves it periodically, connects
to addresses that appeared and disconnects from those that are gone. The loop
never blocks on a slow subscriber: XPUB drops for a subscriber whose queue is
full, exactly like a worker's own PUB socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from stream.wire.curve import CurveError, connect_curve, serve_curve

log = logging.getLogger("adafocus.proxy")

DEFAULT_BIND = "tcp://127.0.0.1:5560"
DEFAULT_RESOLVE_INTERVAL_S = 10.0
POLL_MS = 200
MAX_BURST = 1000  # messages forwarded per wake-up before checking stop/refresh

Resolver = Callable[[str], set[str]]


class ProxyError(ValueError):
    """A proxy setting that cannot work (malformed endpoint, unreadable key)."""


def _split_tcp(endpoint: str) -> tuple[str, int]:
    rest = endpoint[len("tcp://") :]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProxyError(f"endpoint {endpoint!r} must look like tcp://HOST:PORT")
    return host, int(port)


def check_endpoint(endpoint: str) -> str:
    """Validate a worker endpoint given on the command line (tcp://HOST:PORT or ipc://)."""
    if endpoint.startswith("tcp://"):
        host, _ = _split_tcp(endpoint)
        if host == "*":
            raise ProxyError(f"endpoint {endpoint!r}: '*' can be bound, not connected to")
        return endpoint
    if endpoint.startswith(("ipc://", "inproc://")):
        return endpoint
    raise ProxyError(f"endpoint {endpoint!r} must start with tcp://, ipc:// or inproc://")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve_endpoint(endpoint: str) -> set[str]:
    """Every concrete address an endpoint stands for right now.

    A tcp endpoint naming a DNS host becomes one tcp://IP:PORT per address the
    name resolves to; anything else is returned as is. Raises OSError
    (socket.gaierror) when the name does not resolve.
    """
    if not endpoint.startswith("tcp://"):
        return {endpoint}
    host, port = _split_tcp(endpoint)
    if _is_ip(host):
        return {endpoint}
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = set()
    for family, _, _, _, sockaddr in infos:
        ip = sockaddr[0]
        addresses.add(f"tcp://[{ip}]:{port}" if family == socket.AF_INET6 else f"tcp://{ip}:{port}")
    return addresses


@dataclass(frozen=True)
class CurveKeys:
    """Optional CURVE security, on either side of the proxy.

    Backend (the proxy as a client of the workers): `server_public` is the
    workers' public key, `client_cert` the proxy's own key pair, whose public
    half the workers authorize. Frontend (the proxy as a server for
    subscribers): `secret_cert` is its key pair, `authorized_clients` a directory
    of the subscribers' public key files. Key files are ZeroMQ certificates
    (zmq.auth.create_certificates).
    """

    server_public: Path | None = None
    client_cert: Path | None = None
    secret_cert: Path | None = None
    authorized_clients: Path | None = None


class FanInProxy:
    """XSUB connected to every worker, XPUB bound for subscribers.

    Owns its two sockets (and the ZAP authenticator when the frontend uses
    CURVE); `close()` releases them. `serve(stop)` forwards until `stop` is set.
    """

    def __init__(
        self,
        context: zmq.Context,
        connect: Iterable[str],
        bind: str = DEFAULT_BIND,
        resolve_interval_s: float = DEFAULT_RESOLVE_INTERVAL_S,
        hwm: int = 10_000,
        curve: CurveKeys | None = None,
        resolver: Resolver = resolve_endpoint,
    ) -> None:
        self.endpoints = [check_endpoint(e) for e in connect]
        if not self.endpoints:
            raise ProxyError("the proxy needs at least one worker endpoint to connect to")
        self.resolve_interval_s = resolve_interval_s
        self._resolver = resolver
        self._resolved: dict[str, set[str]] = {}
        self.connected: set[str] = set()
        self._auth: ThreadAuthenticator | None = None

        self.backend = context.socket(zmq.XSUB)
        self.frontend = context.socket(zmq.XPUB)
        for sock in (self.backend, self.frontend):
            sock.linger = 0
            sock.ipv6 = True
            sock.sndhwm = hwm
            sock.rcvhwm = hwm
        # Pass every subscriber's subscription on, repeats included: a worker answers
        # each `event.*` subscription with its streams' current states, and a
        # subscriber that arrives after another one with the same prefix needs them too.
        self.frontend.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            self._secure(context, curve or CurveKeys())
            self.frontend.bind(bind)
        except ProxyError:
            self.close()
            raise
        except zmq.ZMQError as exc:
            self.close()
            raise ProxyError(f"cannot bind the proxy to {bind}: {exc}") from exc

    def _secure(self, context: zmq.Context, keys: CurveKeys) -> None:
        if (keys.server_public is None) != (keys.client_cert is None):
            raise ProxyError("CURVE to the workers needs both the server key and a client key")
        if (keys.secret_cert is None) != (keys.authorized_clients is None):
            raise ProxyError("CURVE for subscribers needs both a secret key and a client dir")
        try:
            if keys.server_public is not None and keys.client_cert is not None:
                connect_curve(self.backend, keys.client_cert, keys.server_public)
            if keys.secret_cert is not None and keys.authorized_clients is not None:
                self._auth = serve_curve(
                    context, self.frontend, keys.secret_cert, keys.authorized_clients
                )
        except CurveError as exc:
            raise ProxyError(str(exc)) from None

    @property
    def frontend_endpoint(self) -> str:
        """The bound endpoint, with the real port when bound to port 0 or '*'."""
        return self.frontend.last_endpoint.decode()

    def refresh(self) -> None:
        """Re-resolve every endpoint; connect to new addresses, drop vanished ones.

        A name that does not resolve keeps the addresses it had: a DNS hiccup
        (or a headless Service with no ready pod yet) must not cut live workers.
        """
        for endpoint in self.endpoints:
            try:
                self._resolved[endpoint] = self._resolver(endpoint)
            except OSError as exc:
                if endpoint not in self._resolved:
                    log.warning("cannot resolve %s yet (%s); retrying", endpoint, exc)
                self._resolved.setdefault(endpoint, set())
        wanted = set().union(*self._resolved.values())
        for address in sorted(wanted - self.connected):
            self.backend.connect(address)
            log.info("connected to worker %s", address)
        for address in sorted(self.connected - wanted):
            with contextlib.suppress(zmq.ZMQError):
                self.backend.disconnect(address)
            log.info("disconnected from vanished worker %s", address)
        self.connected = wanted

    def _forward(self, source: zmq.Socket, sink: zmq.Socket) -> None:
        for _ in range(MAX_BURST):
            try:
                frames = source.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            sink.send_multipart(frames, copy=False)

    def serve(self, stop: threading.Event) -> None:
        """Forward messages and subscriptions until `stop` is set."""
        poller = zmq.Poller()
        poller.register(self.backend, zmq.POLLIN)
        poller.register(self.frontend, zmq.POLLIN)
        next_refresh = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                self.refresh()
                next_refresh = now + self.resolve_interval_s
            ready = dict(poller.poll(POLL_MS))
            if self.backend in ready:
                self._forward(self.backend, self.frontend)
            if self.frontend in ready:
                self._forward(self.frontend, self.backend)

    def close(self) -> None:
        self.backend.close(linger=0)
        self.frontend.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
