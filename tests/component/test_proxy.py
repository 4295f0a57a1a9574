"""`adafocus-stream proxy`: real ZeroMQ PUB sockets stand in for workers (they are
what a worker exposes), the proxy runs as a real process or a real in-process
loop, and real SUB sockets subscribe on its single endpoint."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from stream.wire.proxy import CurveKeys, FanInProxy, ProxyError, resolve_endpoint
from tests.support.net import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def start_proxy(*args: str) -> tuple[subprocess.Popen, str]:
    """Run the proxy CLI bound to a free loopback port; return it and its endpoint."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "proxy", "--bind", "tcp://127.0.0.1:0", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    for line in proc.stderr:
        if "serving subscribers on " in line:
            endpoint = line.rsplit(" ", 1)[1].strip()
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, endpoint
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"proxy did not start: {proc.wait()}")


@pytest.fixture
def proxies() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def worker(context: zmq.Context, port: int | None = None) -> tuple[zmq.Socket, str]:
    pub = context.socket(zmq.PUB)
    pub.linger = 0
    if port is None:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
    else:
        pub.bind(f"tcp://127.0.0.1:{port}")
    return pub, f"tcp://127.0.0.1:{port}"


def subscriber(context: zmq.Context, endpoint: str, prefix: bytes = b"") -> zmq.Socket:
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(prefix)
    sub.connect(endpoint)
    return sub


def pump(
    sub: zmq.Socket, publishers: dict[bytes, zmq.Socket], seconds: float, until: set | None = None
) -> set[bytes]:
    """Publish on every worker and collect topics received, for `seconds` or until
    every topic in `until` arrived (publishing repeatedly covers the slow-joiner window)."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for topic, pub in publishers.items():
            pub.send_multipart([topic, b"payload"])
        while sub.poll(10):
            topic, payload = sub.recv_multipart()
            assert payload == b"payload"
            seen.add(topic)
        if until is not None and until <= seen:
            break
    return seen


def test_one_subscriber_receives_every_workers_streams(context, proxies) -> None:
    pub_a, ep_a = worker(context)
    pub_b, ep_b = worker(context)
    proc, endpoint = start_proxy("--connect", f"{ep_a},{ep_b}")
    proxies.append(proc)
    sub = subscriber(context, endpoint, b"label.")
    topics = {b"label.cam-a": pub_a, b"label.cam-b": pub_b}
    assert pump(sub, topics, 15, until=set(topics)) == set(topics)


def test_subscription_prefix_reaches_the_workers(context, proxies) -> None:
    pub_a, ep_a = worker(context)
    pub_b, ep_b = worker(context)
    proc, endpoint = start_proxy("--connect", ep_a, "--connect", ep_b)
    proxies.append(proc)
    sub = subscriber(context, endpoint, b"label.cam-a")
    topics = {b"label.cam-a": pub_a, b"label.cam-b": pub_b, b"event.cam-a": pub_a}
    assert pump(sub, topics, 15, until={b"label.cam-a"}) == {b"label.cam-a"}
    assert pump(sub, topics, 0.5) == {b"label.cam-a"}


def test_restarted_worker_is_served_again_and_others_never_stop(context, proxies) -> None:
    pub_a, ep_a = worker(context)
    pub_b, ep_b = worker(context)
    proc, endpoint = start_proxy("--connect", f"{ep_a},{ep_b}")
    proxies.append(proc)
    sub = subscriber(context, endpoint)
    both = {b"label.a": pub_a, b"label.b": pub_b}
    assert pump(sub, both, 15, until=set(both)) == set(both)

    pub_b.close(linger=0)
    assert pump(sub, {b"label.a": pub_a}, 1.0) == {b"label.a"}

    pub_b, _ = worker(context, port=int(ep_b.rsplit(":", 1)[1]))
    both = {b"label.a": pub_a, b"label.b2": pub_b}
    assert pump(sub, both, 20, until=set(both)) == set(both)


def test_proxy_connects_to_addresses_that_appear_and_drops_vanished_ones(context) -> None:
    pub_a, ep_a = worker(context)
    pub_b, ep_b = worker(context)
    current = {ep_a}
    proxy = FanInProxy(
        context,
        ["tcp://workers.example:5556"],
        bind="tcp://127.0.0.1:0",
        resolve_interval_s=0.1,
        resolver=lambda endpoint: set(current),
    )
    stop = threading.Event()
    thread = threading.Thread(target=proxy.serve, args=(stop,))
    thread.start()
    try:
        sub = subscriber(context, proxy.frontend_endpoint)
        both = {b"label.a": pub_a, b"label.b": pub_b}
        assert pump(sub, both, 10, until={b"label.a"}) >= {b"label.a"}
        assert pump(sub, both, 0.5) == {b"label.a"}

        current = {ep_a, ep_b}  # the name now resolves to a second worker
        assert pump(sub, both, 10, until=set(both)) == set(both)

        current = {ep_b}  # the first worker left the name
        wait_until(lambda: pump(sub, both, 0.5) == {b"label.b"}, 30, "only worker b's labels")
        assert pump(sub, both, 1.0) == {b"label.b"}
    finally:
        stop.set()
        thread.join(timeout=10)
        proxy.close()
    assert not thread.is_alive()


def test_dns_names_resolve_to_every_address_and_ip_literals_stay() -> None:
    assert "tcp://127.0.0.1:5556" in resolve_endpoint("tcp://localhost:5556")
    assert resolve_endpoint("tcp://10.1.2.3:5556") == {"tcp://10.1.2.3:5556"}
    assert resolve_endpoint("ipc:///tmp/x") == {"ipc:///tmp/x"}


def test_proxy_stops_cleanly_on_sigterm(context, proxies) -> None:
    _, ep_a = worker(context)
    proc, _ = start_proxy("--connect", ep_a)
    proxies.append(proc)
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("worker-0:5556", "must start with tcp://"),
        ("tcp://worker-0", "tcp://HOST:PORT"),
        ("tcp://*:5556", "bound, not connected"),
    ],
)
def test_bad_worker_endpoint_is_refused_with_a_clear_message(endpoint: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "proxy", "--connect", endpoint],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_half_configured_curve_is_refused(context, tmp_path: Path) -> None:
    public, _ = zmq.auth.create_certificates(tmp_path, "server")
    with pytest.raises(ProxyError, match="needs both"):
        FanInProxy(
            context,
            ["tcp://127.0.0.1:5556"],
            bind="tcp://127.0.0.1:0",
            curve=CurveKeys(server_public=Path(public)),
        )


def test_curve_on_both_sides_admits_only_authorized_subscribers(
    context, proxies, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    workers_ok = tmp_path / "worker-clients"
    proxy_ok = tmp_path / "proxy-clients"
    for folder in (keys, workers_ok, proxy_ok):
        folder.mkdir()
    worker_pub, worker_secret = zmq.auth.create_certificates(keys, "worker")
    proxy_client_pub, proxy_client_secret = zmq.auth.create_certificates(keys, "proxy-client")
    front_pub, front_secret = zmq.auth.create_certificates(keys, "proxy-front")
    good_pub, good_secret = zmq.auth.create_certificates(keys, "good")
    _, bad_secret = zmq.auth.create_certificates(keys, "bad")
    Path(proxy_client_pub).rename(workers_ok / "proxy-client.key")
    Path(good_pub).rename(proxy_ok / "good.key")

    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(workers_ok))
    try:
        pub = context.socket(zmq.PUB)
        pub.linger = 0
        pub.curve_server = True
        pub.curve_publickey, pub.curve_secretkey = zmq.auth.load_certificate(worker_secret)
        port = pub.bind_to_random_port("tcp://127.0.0.1")

        proc, endpoint = start_proxy(
            "--connect",
            f"tcp://127.0.0.1:{port}",
            "--curve-server-key",
            worker_pub,
            "--curve-client-key",
            proxy_client_secret,
            "--curve-secret-key",
            front_secret,
            "--curve-authorized-clients",
            str(proxy_ok),
        )
        proxies.append(proc)

        def curve_sub(secret_file: str) -> zmq.Socket:
            sub = context.socket(zmq.SUB)
            sub.linger = 0
            sub.curve_publickey, sub.curve_secretkey = zmq.auth.load_certificate(secret_file)
            sub.curve_serverkey = zmq.auth.load_certificate(front_pub)[0]
            sub.subscribe(b"")
            sub.connect(endpoint)
            return sub

        good = curve_sub(good_secret)
        bad = curve_sub(bad_secret)
        assert pump(good, {b"label.cam": pub}, 15, until={b"label.cam"}) == {b"label.cam"}
        assert pump(bad, {b"label.cam": pub}, 1.0) == set()
    finally:
        auth.stop()
