"""GET /metrics aggregates every process; GET /healthz follows the stream states
and the worker's ticks, GET /livez only the worker's ticks; the server frees its
port on close. Time is an injected clock: nothing here waits for the wall clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from stream.config import PublishSection
from stream.metrics import MULTIPROC_ENV, reset_multiprocess_dir, scrape_registry
from stream.serve.api.app import build_app
from stream.serve.api.server import HttpService
from stream.serve.forwarder import Forwarder, control_frames
from stream.serve.health import HealthState
from stream.serve.states import StreamStates
from stream.wire.messages import event_frames
from stream.wire.push import connect_push, send_nowait
from tests.support import ROOT
from tests.support.net import wait_until

pytestmark = pytest.mark.timeout(60)



def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def probes_server(health: HealthState, port: int = 0) -> HttpService:
    """The HTTP service with the probes alone, as the supervisor serves them."""
    return HttpService("127.0.0.1", port, build_app(health, scrape_registry))


def healthz(server: HttpService, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    status, body = get(server.url + path)
    return status, json.loads(body)


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = reset_multiprocess_dir(tmp_path / "prom")
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    return directory


class Clock:
    """An injected monotonic clock: tests move time, they never wait for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


HANG_TIMEOUT_S = 15.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def states() -> StreamStates:
    states = StreamStates(publish=lambda *event: None)
    for sid in ("cam-1", "cam-2"):
        states.add(sid)
    return states


@pytest.fixture
def health(states: StreamStates, clock: Clock) -> HealthState:
    return HealthState(states.snapshot, hang_timeout_s=HANG_TIMEOUT_S, clock=clock)


@pytest.fixture
def server(multiproc_dir: Path, health: HealthState) -> Iterator[HttpService]:
    with probes_server(health) as srv:
        yield srv


def count_in_child(multiproc_dir: Path, decoded: int) -> None:
    """Another process with its own PipelineMetrics, as a producer has."""
    code = (
        "from stream.metrics import PipelineMetrics\n"
        "m = PipelineMetrics()\n"
        f"m.frames_decoded.labels('cam-1').inc({decoded})\n"
        "m.messages_published.inc()\n"
    )
    env = {**os.environ, MULTIPROC_ENV: str(multiproc_dir)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=30)


def test_metrics_aggregates_counters_from_other_processes(
    server: HttpService, multiproc_dir: Path
) -> None:
    count_in_child(multiproc_dir, 3)
    status, text = get(server.url + "/metrics")
    assert status == 200
    assert 'adafocus_frames_decoded_total{stream="cam-1"} 3.0' in text
    count_in_child(multiproc_dir, 4)  # a process that started after the server did
    _, text = get(server.url + "/metrics")
    assert 'adafocus_frames_decoded_total{stream="cam-1"} 7.0' in text
    assert "adafocus_messages_published_total 2.0" in text


def test_healthz_flips_between_200_and_503(
    server: HttpService, health: HealthState, states: StreamStates, clock: Clock
) -> None:
    status, body = healthz(server)
    assert status == 503 and body["healthy"] is False
    assert "worker has not ticked yet" in body["problems"]
    assert "stream cam-1 is connecting" in body["problems"]

    states.source("cam-1", "up", "")
    states.source("cam-2", "up", "")
    health.worker_ticked()
    status, body = healthz(server)
    assert (status, body["problems"]) == (200, [])
    assert body["streams"]["cam-2"]["state"] == "up"

    states.source("cam-2", "reconnecting", "retry in 2 s")
    status, body = healthz(server)
    assert (status, body["problems"]) == (503, ["stream cam-2 is reconnecting: retry in 2 s"])

    states.source("cam-2", "up", "")
    assert healthz(server)[0] == 200
    clock.now += HANG_TIMEOUT_S + 1  # no tick for longer than the hang timeout
    status, body = healthz(server)
    assert status == 503 and len(body["problems"]) == 1
    assert body["problems"][0].startswith("worker last ticked 16.0 s ago")


def test_livez_follows_the_worker_whatever_the_streams_do(
    server: HttpService, health: HealthState, states: StreamStates, clock: Clock
) -> None:
    status, body = healthz(server, "/livez")
    assert (status, body["alive"], body["problems"]) == (503, False, ["worker has not ticked yet"])

    states.source("cam-1", "down", "not a video")  # cam-2 still connecting
    health.worker_ticked()
    status, body = healthz(server, "/livez")
    assert (status, body["problems"]) == (200, [])
    assert body["worker"]["hang_timeout_s"] == HANG_TIMEOUT_S
    assert healthz(server)[0] == 503  # not ready, yet alive

    clock.now += HANG_TIMEOUT_S + 1
    status, body = healthz(server, "/livez")
    assert status == 503 and body["problems"][0].startswith("worker last ticked")
    health.worker_ticked()
    assert healthz(server, "/livez")[0] == 200


def test_reload_keeps_known_streams_and_waits_for_new_ones(
    server: HttpService, health: HealthState, states: StreamStates
) -> None:
    health.worker_ticked()
    states.source("cam-1", "up", "")
    states.source("cam-2", "down", "not a video")
    states.remove("cam-2", "removed from the config")
    states.add("cam-3")
    status, body = healthz(server)
    assert (status, body["problems"]) == (503, ["stream cam-3 is connecting"])
    assert sorted(body["streams"]) == ["cam-1", "cam-3"]
    states.source("cam-3", "up", "")
    assert healthz(server)[0] == 200


def test_healthz_follows_events_through_the_forwarder(
    multiproc_dir: Path, tmp_path: Path
) -> None:
    """The supervisor's wiring: producers' events -> Forwarder's stream states -> /healthz."""
    context = zmq.Context()
    publish = PublishSection(bind="tcp://127.0.0.1:*")
    try:
        with Forwarder(context, f"ipc://{tmp_path}/in.sock", publish) as fwd:
            health = HealthState(fwd.states.snapshot, hang_timeout_s=HANG_TIMEOUT_S)
            health.worker_ticked()
            sender = connect_push(context, fwd.internal_endpoint, linger_ms=0)
            try:
                with probes_server(health) as server:
                    for stream in ("cam-1", "cam-2"):
                        send_nowait(sender, control_frames("add", stream=stream, t=time.time()))
                    for stream in ("cam-1", "cam-2"):
                        assert send_nowait(sender, event_frames(stream, "up", "", time.time()))
                    wait_until(lambda: healthz(server)[0] == 200, 10, "cam-1 and cam-2 up")
                    assert send_nowait(sender, event_frames("cam-1", "down", "not a video",
                                                            time.time()))
                    reply = wait_until(lambda: (r := healthz(server))[0] == 503 and r, 10,
                                       "cam-1 down")
                    assert reply[1]["problems"] == ["stream cam-1 is down: not a video"]
            finally:
                sender.close()
    finally:
        context.term()


def test_unknown_path_is_404(server: HttpService) -> None:
    assert get(server.url + "/")[0] == 404


def test_close_frees_the_port_and_a_taken_port_fails_at_start(multiproc_dir: Path) -> None:
    health = HealthState(dict, hang_timeout_s=1.0)
    first = probes_server(health).start()
    port = first.port
    assert get(first.url + "/metrics")[0] == 200
    with pytest.raises(OSError), probes_server(health, port):
        pass
    first.close()
    with probes_server(health, port) as again:
        assert again.port == port
        assert get(again.url + "/metrics")[0] == 200
