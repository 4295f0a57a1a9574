"""Results from PUSH senders through the supervisor's Forwarder to real subscribers:
order, filtering, never blocking on a slow subscriber, CURVE, and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
import zmq.auth

from stream.client import CurveClient, Subscriber
from stream.config import CurveSection, PublishSection
from stream.metrics import PipelineMetrics
from stream.serve.forwarder import Forwarder, control_frames
from stream.wire.messages import (
    LABEL_KEYS,
    SCHEMA_VERSION,
    decode,
    encode,
    event_frames,
    label_frames,
    label_topic,
)
from stream.wire.push import connect_push, send_nowait
from tests.support import ROOT
from tests.support.net import wait_until

pytestmark = pytest.mark.timeout(60)



@dataclass
class Step:
    """The fields of adafocus.StepResult that a label message carries."""

    label: str = "7"
    class_id: int = 7
    score: float = 0.9
    topk: tuple[tuple[str, float], ...] = (("7", 0.9), ("1", 0.05))
    patch: tuple[float, float, float, float] | None = (0.1, 0.2, 0.5, 0.6)
    skipped: bool = False
    gflops: float = 0.25
    gflops_full: float = 2.5


def label(stream: str, seq: int, truth: str | None = None) -> list[bytes]:
    return label_frames(stream, seq, seq / 25.0, time.time(), Step(), truth)


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.term()  # hangs (and the timeout fails the test) if a socket was left open


@pytest.fixture
def forwarder(context: zmq.Context, tmp_path: Path) -> Iterator[Callable[..., Forwarder]]:
    made: list[Forwarder] = []

    def make(sndhwm: int = 1000, curve: CurveSection | None = None,
             metrics: PipelineMetrics | None = None) -> Forwarder:
        publish = PublishSection(bind="tcp://127.0.0.1:*", sndhwm=sndhwm, curve=curve)
        fwd = Forwarder(context, f"ipc://{tmp_path}/in.sock", publish).start(metrics)
        made.append(fwd)
        return fwd

    yield make
    for fwd in made:
        fwd.close()


@pytest.fixture
def push(context: zmq.Context) -> Iterator[Callable[[str], zmq.Socket]]:
    sockets: list[zmq.Socket] = []

    def make(endpoint: str, hwm: int = 1000) -> zmq.Socket:
        sockets.append(connect_push(context, endpoint, hwm, linger_ms=0))
        return sockets[-1]

    yield make
    for s in sockets:
        s.close()


def until_subscribed(sender: zmq.Socket, *subscribers: Subscriber, timeout: float = 10.0) -> None:
    """Send probes until every subscriber got one: a SUB misses whatever was
    published before its subscription reached the PUB (ZeroMQ's slow joiner)."""
    waiting = list(subscribers)
    deadline = time.monotonic() + timeout
    while waiting:
        assert time.monotonic() < deadline, "subscribers never connected"
        assert send_nowait(sender, label("probe", 0))
        waiting = [s for s in waiting if s.recv(timeout=0.02) is None]
    for s in subscribers:  # drop the probes still queued
        while s.recv(timeout=0.1) is not None:
            pass


def published_total(metrics: PipelineMetrics) -> float:
    (family,) = metrics.messages_published.collect()
    return next(s.value for s in family.samples if s.name.endswith("_total"))


def test_label_frames_follow_the_v1_schema() -> None:
    kind, payload = decode(label("cam-1", 42, truth="7"))
    assert kind == "label"
    assert set(LABEL_KEYS) <= set(payload)
    assert payload["v"] == SCHEMA_VERSION and payload["stream"] == "cam-1"
    assert payload["seq"] == 42 and payload["pts"] == pytest.approx(42 / 25.0)
    assert payload["topk"] == [["7", 0.9], ["1", 0.05]]
    assert payload["patch"] == [0.1, 0.2, 0.5, 0.6]
    assert payload["t_publish"] >= payload["t_capture"]
    assert payload["truth"] == "7"
    _, without_truth = decode(label_frames("cam-1", 1, None, 0.0, Step(patch=None, skipped=True)))
    assert "truth" not in without_truth
    assert without_truth["pts"] is None and without_truth["patch"] is None


def test_forwarder_delivers_labels_and_events_in_order_and_counts_them(forwarder, push) -> None:
    metrics = PipelineMetrics()
    fwd = forwarder(metrics=metrics)
    sender = push(fwd.internal_endpoint)
    assert send_nowait(sender, control_frames("add", stream="cam-1", t=time.time()))
    with Subscriber(fwd.public_endpoint, events=True) as sub:
        until_subscribed(sender, sub)
        before = fwd.forwarded
        sent = [label("cam-1", seq) for seq in range(200)]
        sent.insert(100, event_frames("cam-1", "stalled", "no frame for 5 s", time.time()))
        for frames in sent:
            assert send_nowait(sender, frames)
        got = [m for m in (sub.recv(timeout=5) for _ in sent) if m]
    assert [m.kind for m in got] == ["label"] * 100 + ["event"] + ["label"] * 100
    assert [m.payload["seq"] for m in got if m.kind == "label"] == list(range(200))
    event = got[100].payload
    assert (event["state"], event["detail"]) == ("stalled", "no frame for 5 s")
    assert fwd.states.snapshot()["cam-1"].state == "stalled"
    assert fwd.forwarded - before == len(sent)
    assert published_total(metrics) == fwd.forwarded


def test_subscriber_filters_exact_stream_ids_and_events(forwarder, push) -> None:
    fwd = forwarder()
    sender = push(fwd.internal_endpoint)
    with Subscriber(fwd.public_endpoint, streams=["cam-1", "probe"]) as sub:
        until_subscribed(sender, sub)
        for stream in ("cam-10", "cam-2", "cam-1"):
            send_nowait(sender, event_frames(stream, "up", "", time.time()))
            send_nowait(sender, label(stream, 1))
        message = sub.recv(timeout=5)
        assert message is not None and (message.kind, message.stream) == ("label", "cam-1")
        assert sub.recv(timeout=0.3) is None


def test_malformed_messages_are_dropped_and_the_rest_still_flows(forwarder, push) -> None:
    fwd = forwarder()
    sender = push(fwd.internal_endpoint)
    with Subscriber(fwd.public_endpoint, events=True) as sub:
        until_subscribed(sender, sub)
        send_nowait(sender, [b"label.cam-1"])  # one frame
        send_nowait(sender, [b"metrics", encode({"v": 1})])  # unknown topic
        send_nowait(sender, [b"event.cam-1", b"\xc1 not msgpack"])
        send_nowait(sender, [b"event.cam-1", encode({"v": 1, "stream": "cam-1"})])  # no state
        send_nowait(sender, label("cam-1", 5))
        message = sub.recv(timeout=5)
        assert message is not None and message.payload["seq"] == 5
        assert sub.recv(timeout=0.2) is None
    assert fwd.malformed == 4 and fwd.states.snapshot() == {}


def test_send_nowait_drops_when_the_queue_is_full_instead_of_blocking(push, tmp_path) -> None:
    sender = push(f"ipc://{tmp_path}/nobody-binds-this.sock", hwm=5)
    results = [send_nowait(sender, label("cam-1", seq)) for seq in range(50)]
    assert results[0] is True
    assert results.count(True) <= 10 and results[-1] is False


def test_slow_subscriber_loses_messages_but_not_the_publishers_time(forwarder, push) -> None:
    sndhwm, rcvhwm, total, burst = 50, 10, 2000, 20  # bursts fit in sndhwm
    fwd = forwarder(sndhwm=sndhwm)
    sender = push(fwd.internal_endpoint)
    pad = b"x" * 65536  # big messages, so kernel socket buffers hold few of them
    with (
        Subscriber(fwd.public_endpoint, rcvhwm=rcvhwm) as slow,
        Subscriber(fwd.public_endpoint) as fast,
    ):
        until_subscribed(sender, slow, fast)
        received = 0
        for start in range(0, total, burst):
            for seq in range(start, start + burst):
                _, payload = decode(label("cam-1", seq))
                # Never False: the forwarder keeps draining although `slow` reads nothing.
                assert send_nowait(sender, [label_topic("cam-1"), encode({**payload, "pad": pad})])
            while received < start + burst:  # the fast subscriber keeps up with every burst
                message = fast.recv(timeout=5)
                assert message is not None, f"fast subscriber stalled after {received}"
                assert message.payload["seq"] == received
                received += 1
        slow_received = 0
        while slow.recv(timeout=0.5) is not None:
            slow_received += 1
    # What a never-reading subscriber can get is bounded by the queues (sndhwm + rcvhwm +
    # kernel buffers), not by what was published: the publisher did not keep the rest.
    print(f"slow subscriber got {slow_received} of {total} (sndhwm {sndhwm}, rcvhwm {rcvhwm})")
    assert slow_received < total // 4
    assert fwd.forwarded >= total


def test_curve_admits_only_authorized_clients(forwarder, push, tmp_path) -> None:
    certs, authorized = tmp_path / "certs", tmp_path / "authorized"
    certs.mkdir()
    authorized.mkdir()
    for name in ("server", "good", "stranger"):
        zmq.auth.create_certificates(certs, name)
    shutil.copy(certs / "good.key", authorized)
    fwd = forwarder(curve=CurveSection(server_secret_key=certs / "server.key_secret",
                                      authorized_clients=authorized))
    sender = push(fwd.internal_endpoint)
    server_key = certs / "server.key"
    with (
        Subscriber(
            fwd.public_endpoint, curve=CurveClient(certs / "good.key_secret", server_key)
        ) as good,
        Subscriber(
            fwd.public_endpoint, curve=CurveClient(certs / "stranger.key_secret", server_key)
        ) as stranger,
        Subscriber(fwd.public_endpoint) as plain,
    ):
        until_subscribed(sender, good)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # give the others every chance to connect
            send_nowait(sender, label("cam-1", 1))
            assert good.recv(timeout=1) is not None
            time.sleep(0.02)
        assert stranger.recv(timeout=0.3) is None
        assert plain.recv(timeout=0.3) is None


def run_cli(*args: str, pump: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """`adafocus-stream subscribe ...` as a real process, while `pump` keeps
    publishing until it exits."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "subscribe", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()

    def keep_publishing() -> None:
        while not stop.is_set() and process.poll() is None:
            pump()
            time.sleep(0.02)

    thread = threading.Thread(target=keep_publishing) if pump else None
    try:
        if thread:
            thread.start()
        out, err = process.communicate(timeout=30)
    finally:
        stop.set()
        if thread:
            thread.join()
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_subscribe_cli_prints_json_lines_for_piping(forwarder, push) -> None:
    fwd = forwarder()
    sender = push(fwd.internal_endpoint)
    seq = iter(range(10**6))
    result = run_cli(
        fwd.public_endpoint,
        "--json",
        "--count",
        "3",
        "--timeout",
        "20",
        pump=lambda: send_nowait(sender, label("cam-1", next(seq), truth="7")),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3
    assert all(
        r["kind"] == "label" and r["stream"] == "cam-1" and r["truth"] == "7" for r in records
    )
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)


def test_subscribe_cli_prints_readable_lines_for_one_stream(forwarder, push) -> None:
    fwd = forwarder()
    sender = push(fwd.internal_endpoint)

    def pump() -> None:
        for stream in ("cam-1", "cam-2"):
            send_nowait(sender, control_frames("add", stream=stream, t=0.0))
        send_nowait(sender, label("cam-2", 1))
        send_nowait(sender, event_frames("cam-1", "reconnecting", "retry in 2 s", time.time()))
        send_nowait(sender, label("cam-1", 9, truth="3"))

    result = run_cli(
        fwd.public_endpoint,
        "--stream",
        "cam-1",
        "--events",
        "--count",
        "4",
        "--timeout",
        "20",
        pump=pump,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and not any("cam-2" in line for line in lines)
    label_line = next(line for line in lines if "seq=" in line)
    for part in (
        "cam-1",
        "seq=9",
        "label=7",
        "score=0.90",
        "skipped=no",
        "patch=[0.10,0.20,0.50,0.60]",
        "gflops=0.250/2.500",
        "truth=3",
    ):
        assert part in label_line, label_line
    assert any("cam-1 event reconnecting: retry in 2 s" in line for line in lines)


def test_subscribe_cli_fails_when_nothing_arrives_before_the_timeout(forwarder) -> None:
    fwd = forwarder()
    result = run_cli(fwd.public_endpoint, "--timeout", "0.3")
    assert result.returncode == 1
    assert result.stdout == "" and "no message for 0.3 s" in result.stderr


def test_a_late_subscriber_learns_the_current_state_of_every_stream(forwarder, push) -> None:
    """Events are state changes; a client that connects after them still gets each
    stream's current state (with the time it began) as soon as it subscribes."""
    fwd = forwarder()
    sender = push(fwd.internal_endpoint)
    began = time.time() - 60
    for stream in ("cam-1", "cam-2"):
        send_nowait(sender, control_frames("add", stream=stream, t=began - 1))
    send_nowait(sender, event_frames("cam-1", "up", "h264 640x360", began))
    send_nowait(sender, event_frames("cam-2", "down", "not found (404)", began))
    wait_until(lambda: len(fwd.states.snapshot()) == 2
               and fwd.states.snapshot()["cam-2"].state == "down", 10, "both states")
    with Subscriber(fwd.public_endpoint, events=True) as late:
        got = {}
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            message = late.recv(timeout=1)
            if message is not None and message.kind == "event":
                got[message.stream] = message.payload
    assert {sid: (e["state"], e["detail"]) for sid, e in got.items()} == {
        "cam-1": ("up", "h264 640x360"), "cam-2": ("down", "not found (404)")}
    assert got["cam-1"]["t"] == pytest.approx(began)
    with Subscriber(fwd.public_endpoint, streams=["cam-2"], events=True) as only_cam2:
        message = only_cam2.recv(timeout=10)
        assert message is not None and (message.stream, message.payload["state"]) == (
            "cam-2", "down")
