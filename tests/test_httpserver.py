"""GET /metrics aggregates every process; GET /healthz follows stream events and
the worker's ticks, GET /livez only the worker's ticks; the server frees its port
on close."""

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
from stream.metrics import MULTIPROC_ENV, reset_multiprocess_dir
from stream.serve.forwarder import Forwarder
from stream.serve.http import HealthState, MetricsServer
from stream.wire.messages import event_frames
from stream.wire.push import connect_push, send_nowait

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def healthz(server: MetricsServer, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    status, body = get(server.url + path)
    return status, json.loads(body)


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = reset_multiprocess_dir(tmp_path / "prom")
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    return directory


@pytest.fixture
def health() -> HealthState:
    return HealthState(["cam-1", "cam-2"], hang_timeout_s=0.3)


@pytest.fixture
def server(multiproc_dir: Path, health: HealthState) -> Iterator[MetricsServer]:
    with MetricsServer("127.0.0.1", 0, health) as srv:
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
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=30)


def test_metrics_aggregates_counters_from_other_processes(
    server: MetricsServer, multiproc_dir: Path
) -> None:
    count_in_child(multiproc_dir, 3)
    status, text = get(server.url + "/metrics")
    assert status == 200
    assert 'adafocus_frames_decoded_total{stream="cam-1"} 3.0' in text
    count_in_child(multiproc_dir, 4)  # a process that started after the server did
    _, text = get(server.url + "/metrics")
    assert 'adafocus_frames_decoded_total{stream="cam-1"} 7.0' in text
    assert "adafocus_messages_published_total 2.0" in text


def test_healthz_flips_between_200_and_503(server: MetricsServer, health: HealthState) -> None:
    status, body = healthz(server)
    assert status == 503 and body["healthy"] is False
    assert "worker has not ticked yet" in body["problems"]
    assert "stream cam-1 is connecting" in body["problems"]

    health.set_stream("cam-1", "up")
    health.set_stream("cam-2", "up")
    health.worker_ticked()
    status, body = healthz(server)
    assert (status, body["problems"]) == (200, [])
    assert body["streams"]["cam-2"]["state"] == "up"

    health.on_event({"stream": "cam-2", "state": "reconnecting", "detail": "retry in 2 s"})
    health.worker_ticked()
    status, body = healthz(server)
    assert (status, body["problems"]) == (503, ["stream cam-2 is reconnecting: retry in 2 s"])

    health.set_stream("cam-2", "up")
    health.worker_ticked()
    assert healthz(server)[0] == 200
    time.sleep(0.5)  # longer than the 0.3 s hang timeout, with no tick
    status, body = healthz(server)
    assert status == 503 and len(body["problems"]) == 1
    assert body["problems"][0].startswith("worker last ticked")


def test_livez_follows_the_worker_whatever_the_streams_do(
    server: MetricsServer, health: HealthState
) -> None:
    status, body = healthz(server, "/livez")
    assert (status, body["alive"], body["problems"]) == (503, False, ["worker has not ticked yet"])

    health.set_stream("cam-1", "down", "not a video")  # cam-2 still connecting
    health.worker_ticked()
    status, body = healthz(server, "/livez")
    assert (status, body["problems"]) == (200, [])
    assert body["worker"]["hang_timeout_s"] == 0.3
    assert healthz(server)[0] == 503  # not ready, yet alive

    time.sleep(0.5)  # longer than the 0.3 s hang timeout, with no tick
    status, body = healthz(server, "/livez")
    assert status == 503 and body["problems"][0].startswith("worker last ticked")
    health.worker_ticked()
    assert healthz(server, "/livez")[0] == 200


def test_reload_keeps_known_streams_and_waits_for_new_ones(
    server: MetricsServer, health: HealthState
) -> None:
    health.worker_ticked(at=time.monotonic() + 30)
    health.set_stream("cam-1", "up")
    health.set_stream("cam-2", "down", "not a video")
    health.set_streams(["cam-1", "cam-3"])  # cam-2 removed, cam-3 added
    status, body = healthz(server)
    assert (status, body["problems"]) == (503, ["stream cam-3 is connecting"])
    assert sorted(body["streams"]) == ["cam-1", "cam-3"]
    health.on_event({"stream": "cam-3", "state": "up", "detail": ""})
    assert healthz(server)[0] == 200


def test_healthz_follows_events_through_the_forwarder(
    server: MetricsServer, health: HealthState, tmp_path: Path
) -> None:
    """The supervisor's wiring: producers' events -> Forwarder -> HealthState."""
    health.worker_ticked(at=time.monotonic() + 30)  # keep the worker out of this test
    context = zmq.Context()
    publish = PublishSection(bind="tcp://127.0.0.1:*")
    try:
        with Forwarder(
            context, f"ipc://{tmp_path}/in.sock", publish, on_event=health.on_event
        ) as fwd:
            sender = connect_push(context, fwd.internal_endpoint, linger_ms=0)
            try:
                for stream in ("cam-1", "cam-2"):
                    assert send_nowait(sender, event_frames(stream, "up", "", time.time()))
                deadline = time.monotonic() + 5
                while healthz(server)[0] != 200:
                    assert time.monotonic() < deadline, healthz(server)
                    time.sleep(0.02)
                assert send_nowait(sender, event_frames("cam-1", "down", "not a video", 0.0))
                deadline = time.monotonic() + 5
                while (reply := healthz(server))[0] != 503:
                    assert time.monotonic() < deadline, reply
                    time.sleep(0.02)
                assert reply[1]["problems"] == ["stream cam-1 is down: not a video"]
            finally:
                sender.close()
    finally:
        context.term()


def test_unknown_path_is_404(server: MetricsServer) -> None:
    assert get(server.url + "/")[0] == 404


def test_close_frees_the_port_and_a_taken_port_fails_at_start(multiproc_dir: Path) -> None:
    health = HealthState([], hang_timeout_s=1.0)
    first = MetricsServer("127.0.0.1", 0, health).start()
    port = first.port
    assert get(first.url + "/metrics")[0] == 200
    with pytest.raises(OSError), MetricsServer("127.0.0.1", port, health):
        pass
    first.close()
    with MetricsServer("127.0.0.1", port, health) as again:
        assert again.port == port
        assert get(again.url + "/metrics")[0] == 200
