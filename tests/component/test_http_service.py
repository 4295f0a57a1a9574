"""The HTTP server under clients that misbehave: idle, trickling, TLS, too many.
Each test runs the real server on 127.0.0.1 with the probes app and talks to it
with raw sockets; deadlines are generous and nothing asserts how fast."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from stream.metrics import scrape_registry
from stream.serve.api.app import build_app
from stream.serve.api.server import HttpService, Limits
from stream.serve.health import HealthState
from tests.support.net import wait_until

pytestmark = pytest.mark.timeout(120)

TLS_CLIENT_HELLO = bytes.fromhex("160301002e0100002a0303") + bytes(32) + b"\x00"


@pytest.fixture
def limits() -> Limits:
    return Limits(read_timeout_s=1.0, idle_timeout_s=1, max_connections=300)


@pytest.fixture
def server(limits: Limits) -> Iterator[HttpService]:
    health = HealthState(dict, hang_timeout_s=1.0)
    with HttpService("127.0.0.1", 0, build_app(health, scrape_registry), limits) as srv:
        yield srv


def request(server: HttpService, method: str, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def closed_by_server(sock: socket.socket, timeout_s: float = 20.0) -> bool:
    """True once the server closed `sock` (EOF or reset) within `timeout_s`."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def connect(server: HttpService) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def test_head_answers_like_get_without_a_body(server: HttpService) -> None:
    for path in ("/metrics", "/livez"):
        get_status, _ = request(server, "GET", path)
        status, body = request(server, "HEAD", path)
        assert (status, body) == (get_status, b"")


def test_a_client_that_connects_and_says_nothing_is_closed(server: HttpService) -> None:
    with connect(server) as sock:
        assert closed_by_server(sock)


def test_a_client_that_trickles_its_request_is_closed(server: HttpService) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        sock.sendall(b"Host: x\r\n")  # and the blank line never comes
        assert closed_by_server(sock)


def test_a_tls_client_hello_is_closed_without_an_answer(server: HttpService) -> None:
    with connect(server) as sock:
        sock.sendall(TLS_CLIENT_HELLO)
        sock.settimeout(20)
        assert sock.recv(4096) == b""


def test_an_idle_keep_alive_connection_is_closed(server: HttpService) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/livez")
    connection.getresponse().read()
    assert closed_by_server(connection.sock)
    connection.close()


def test_200_idle_clients_hold_no_thread_and_do_not_hold_up_metrics(
    server: HttpService,
) -> None:
    threads_before = threading.active_count()
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(server)) for _ in range(200)]
        for sock in idle[::2]:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # half of them start a request
        assert threading.active_count() <= threads_before + 2
        for _ in range(5):
            assert request(server, "GET", "/metrics")[0] == 200
        assert all(closed_by_server(sock) for sock in idle)
    assert request(server, "GET", "/metrics")[0] == 200


def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    health = HealthState(dict, hang_timeout_s=1.0)
    limits = Limits(read_timeout_s=30.0, max_connections=10)
    with HttpService("127.0.0.1", 0, build_app(health, scrape_registry), limits) as server, \
            ExitStack() as stack:
        held = [stack.enter_context(connect(server)) for _ in range(10)]
        extra = stack.enter_context(connect(server))
        assert closed_by_server(extra)
        for sock in held[:2]:
            sock.close()
        wait_until(lambda: request(server, "GET", "/livez")[0] == 503, 20,
                   "a request once connections are free again")


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is not installed")
def test_the_listen_backlog_is_a_real_one(server: HttpService) -> None:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True,
                         text=True, check=True, timeout=10).stdout.split()
    assert out[0] == "LISTEN" and int(out[2]) >= 128, out  # Send-Q of a listener: its backlog
