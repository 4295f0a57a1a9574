"""What an operator reads (events, /healthz, /metrics) tells the truth on a real
pipeline: a dead stream stays dead across a worker restart and a reload, every
configured stream has its state series for its whole life, restarts are
counted, a late subscriber learns every stream's state, and removed streams
leave /metrics. One pipeline per module, with one healthy synthetic camera and
one source that can never work (a text file)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stream.client import Subscriber
from tests.support.net import wait_until
from tests.support.pipeline import Pipeline, metric, pipeline_config, tiny_checkpoint

pytestmark = pytest.mark.slow

HEALTHY = {"id": "good", "uri": "synthetic://pattern?fps=10&seed=1"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("truth")


@pytest.fixture(scope="module")
def pipeline(workdir: Path):
    not_a_video = workdir / "notes.mp4"
    not_a_video.write_text("this is not a video\n")
    config = pipeline_config(
        tiny_checkpoint(workdir),
        [HEALTHY, {"id": "dead", "uri": str(not_a_video)}],
        worker={"hang_timeout_s": 5.0},
    )
    running = Pipeline(workdir, config)
    try:
        running.collector.wait_labels("good", timeout=60)
        running.collector.wait_event("dead", ("down",), timeout=60)
    except AssertionError as exc:
        running.close()
        raise AssertionError(f"{exc}\n{running.log_text()[-4000:]}") from exc
    yield running
    running.close()



def state_series(pipeline: Pipeline, stream: str) -> dict[str, float]:
    values = pipeline.metrics()
    return {
        dict(labels)["state"]: value
        for (name, labels), value in values.items()
        if name == "adafocus_stream_state" and dict(labels).get("stream") == stream
    }


def test_a_dead_stream_has_its_state_series_for_its_whole_life(pipeline) -> None:
    try:
        values = pipeline.metrics()
        assert metric(values, "adafocus_stream_up", stream="dead") == 0.0
        assert ("adafocus_stream_up", (("stream", "dead"),)) in values
        assert state_series(pipeline, "dead") == {
            "connecting": 0.0, "up": 0.0, "stalled": 0.0, "reconnecting": 0.0, "down": 1.0,
            "ended": 0.0}
        assert metric(values, "adafocus_stream_up", stream="good") == 1.0
        assert state_series(pipeline, "good")["up"] == 1.0
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_a_late_subscriber_learns_every_streams_state_at_once(pipeline) -> None:
    endpoint = pipeline.base_config["publish"]["bind"]
    with Subscriber(endpoint, events=True) as late:
        seen: dict[str, dict] = {}
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            message = late.recv(timeout=1)
            if message is not None and message.kind == "event":
                seen[message.stream] = message.payload
    assert {sid: e["state"] for sid, e in seen.items()} == {"good": "up", "dead": "down"}
    assert "not a video" in seen["dead"]["detail"]


def test_a_worker_restart_never_resurrects_a_dead_stream(pipeline) -> None:
    c = pipeline.collector
    try:
        restarts = metric(pipeline.metrics(), "adafocus_process_restarts_total",
                          process="worker", stream="")
        killed_at = time.monotonic()
        os.kill(pipeline.worker_pids()[-1], signal.SIGKILL)
        c.wait_event("good", ("stalled",), since=killed_at, timeout=30,
                     detail="inference worker restarting")
        c.wait_event("good", ("up",), since=killed_at, timeout=60, detail="inference resumed")
        c.wait_labels("good", count=3, since=time.monotonic(), timeout=30)
        # nothing happened to it (a repeat of its state, when a subscriber joins, is fine)
        assert {e["state"] for e in c.events("dead", since=killed_at)} <= {"down"}
        status, body = pipeline.healthz()
        assert status == 503 and body["streams"]["dead"]["state"] == "down"
        assert body["problems"] == [f"stream dead is down: {body['streams']['dead']['detail']}"]
        assert state_series(pipeline, "dead")["down"] == 1.0
        assert metric(pipeline.metrics(), "adafocus_process_restarts_total",
                      process="worker", stream="") == restarts + 1

        reload_at = time.monotonic()  # an unchanged config keeps the truth too
        pipeline.signal(signal.SIGHUP)
        wait_until(lambda: "0 restarted, 2 unchanged" in pipeline.log_text(), 20, "the reload")
        c.wait_labels("good", count=3, since=reload_at, timeout=30)
        assert {e["state"] for e in c.events("dead", since=reload_at)} <= {"down"}
        assert pipeline.healthz()[1]["streams"]["dead"]["state"] == "down"
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_a_killed_producer_is_counted_and_restarted(pipeline) -> None:
    c = pipeline.collector
    try:
        before = metric(pipeline.metrics(), "adafocus_process_restarts_total",
                        process="producer", stream="good")
        known = len(pipeline.producer_pids("good"))
        os.kill(pipeline.producer_pids("good")[-1], signal.SIGKILL)
        wait_until(lambda: len(pipeline.producer_pids("good")) > known, 30, "a new producer")
        c.wait_labels("good", count=3, since=time.monotonic(), timeout=30)
        assert metric(pipeline.metrics(), "adafocus_process_restarts_total",
                      process="producer", stream="good") == before + 1
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_a_removed_stream_leaves_metrics_at_once(pipeline) -> None:
    c = pipeline.collector
    try:
        assert metric(pipeline.metrics(), "adafocus_frames_decoded_total", stream="good") > 0
        removed_at = time.monotonic()
        pipeline.write_config({**pipeline.base_config, "streams": [
            {"id": "other", "uri": "synthetic://pattern?fps=10&seed=2"}]})
        pipeline.signal(signal.SIGHUP)
        c.wait_event("good", ("down",), since=removed_at, timeout=20,
                     detail="removed from the config")
        c.wait_labels("other", timeout=30)
        names = {(name, dict(labels).get("stream")) for name, labels in pipeline.metrics()}
        assert not {n for n in names if n[1] in ("good", "dead")}, sorted(names)
        assert ("adafocus_stream_up", "other") in names
        assert sorted(pipeline.healthz()[1]["streams"]) == ["other"]
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc
