"""One real pipeline fed by a real RTSP server, a synthetic camera and a file,
plus a camera that can never connect; watched from outside over ZeroMQ and
HTTP while its parts are killed.

Everything runs in one pipeline (each start costs seconds on a small machine),
in phases that each name the behaviour they prove in their assertions."""

from __future__ import annotations

import os
import signal
import time

import pytest
from live_pipeline import free_port, tiny_checkpoint
from pipeline_harness import (
    RunningPipeline,
    assert_seq_increasing,
    max_gap,
    metric,
    pipeline_config,
)

from stream.client import Subscriber

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]

STEADY = ("cam", "steady")  # synthetic cameras: the "others" that must never stop
LIVE = ("cam", "steady", "rtsp")


def test_rtsp_synthetic_and_file_feed_one_pipeline_that_survives_its_parts_dying(
    rtsp_server, h264_clip, tmp_path
):
    server = rtsp_server()
    streams = [
        {"id": "cam", "uri": "synthetic://pattern?fps=10&seed=1"},
        {"id": "steady", "uri": "synthetic://pattern?fps=10&seed=2"},
        {"id": "rtsp", "uri": server.url()},
        {"id": "file", "uri": str(h264_clip), "lossless": True},
        {"id": "dead", "uri": f"rtsp://127.0.0.1:{free_port()}/nobody-home"},
    ]
    config = pipeline_config(tiny_checkpoint(tmp_path), streams)
    pipeline = RunningPipeline(tmp_path, config)
    c = pipeline.collector
    # A subscriber that never reads, for the whole test: it must cost the others nothing
    # (checked below: the steady camera never pauses, every file label arrives).
    stalled_reader = Subscriber(config["publish"]["bind"], events=True, rcvhwm=10)
    try:
        # 1. Every source's labels arrive, valid v1 (the client validates), seq increasing.
        for stream in ("cam", "steady", "rtsp", "file"):
            c.wait_labels(stream, count=5, timeout=60)
        first = c.labels("cam")[0]
        assert first["v"] == 1 and first["truth"] in ("0", "1", "2", "3")
        assert first["t_capture"] <= first["t_publish"]

        # 2. The camera that can never connect keeps retrying without stopping the others,
        #    and /healthz names it.
        c.wait_event("dead", ("reconnecting",), timeout=20)
        assert not [e for e in c.events("dead") if e["state"] == "up"]
        status, health = pipeline.healthz()
        assert status == 503 and health["streams"]["dead"]["state"] != "up"
        assert health["streams"]["steady"]["state"] == "up"

        # 3. The file plays to its end; what /metrics counts matches what was received.
        c.wait_event("file", ("ended",), timeout=30)
        time.sleep(0.5)  # the worker's last frames of the file
        before = pipeline.metrics()
        assert metric(before, "adafocus_frames_processed_total", stream="file") == len(
            c.labels("file")
        )
        for stream in LIVE:
            processed = metric(before, "adafocus_frames_processed_total", stream=stream)
            assert processed >= len(c.labels(stream)) > 0
        received = sum(len(c.labels(s)) + len(c.events(s)) for s in (*LIVE, "file", "dead"))
        assert metric(before, "adafocus_messages_published_total") >= received
        time.sleep(1.0)
        after = pipeline.metrics()
        for stream in STEADY:
            assert metric(after, "adafocus_frames_processed_total", stream=stream) > metric(
                before, "adafocus_frames_processed_total", stream=stream
            ), f"{stream}: counters did not move"
            assert metric(after, "adafocus_frames_decoded_total", stream=stream) > 0
        assert metric(after, "adafocus_latency_seconds_count", stream="cam") > 0

        # 4. A killed producer is restarted; its stream resumes; the others never stop.
        (old_pid,) = pipeline.producer_pids("cam")
        last_seq = c.labels("cam")[-1]["seq"]
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        c.wait_event("cam", ("reconnecting",), since=killed_at, detail="SIGKILL", timeout=10)
        resumed = c.wait_labels("cam", since=killed_at + 0.5, timeout=30)
        assert resumed[0]["seq"] > last_seq
        assert len(pipeline.producer_pids("cam")) == 2

        # 5. The RTSP server dies: that stream reconnects, the others are unaffected, and
        #    it recovers when the server is back (on the same port).
        server.kill()
        lost_at = time.monotonic()
        c.wait_event("rtsp", ("reconnecting", "stalled"), since=lost_at, timeout=15)
        time.sleep(2.0)
        assert not c.labels("rtsp", since=lost_at + 1.5), "labels from a dead RTSP server"
        c.wait_labels("steady", since=lost_at + 1.5, timeout=5)
        server.start()
        back_at = time.monotonic()
        c.wait_event("rtsp", ("up",), since=back_at, timeout=30)
        c.wait_labels("rtsp", count=3, since=back_at, timeout=30)

        # Throughout: the steady camera never paused, and every stream's seq only grew.
        assert max_gap(c.label_times("steady")) < 3.0
        for stream in (*LIVE, "file"):
            assert_seq_increasing(c.labels(stream), stream)
        assert c.malformed == 0

        # 6. SIGTERM ends everything within 5 s, status 0, final events out, no /dev/shm left.
        stop_at = time.monotonic()
        code, took = pipeline.terminate(timeout=10)
        assert code == 0 and took < 5.0, f"exit {code} after {took:.1f} s"
        time.sleep(0.3)
        for stream in LIVE:
            assert c.events(stream, since=stop_at)[-1]["state"] == "down"
        assert pipeline.rings() == []
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- pipeline log ---\n{pipeline.log()[-6000:]}") from exc
    finally:
        stalled_reader.close()
        pipeline.close()
