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

from stream.client import Subscriber
from tests.support.net import free_port, wait_until
from tests.support.pipeline import (
    Pipeline,
    assert_seq_increasing,
    metric,
    pipeline_config,
    tiny_checkpoint,
)
from tests.support.producers import CLIP_FRAMES

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]

STEADY = ("cam", "steady")  # synthetic cameras: the "others" that must never stop
LIVE = ("cam", "steady", "rtsp")
RING_SLOTS = 8  # the config's default


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
    pipeline = Pipeline(tmp_path, config)
    c = pipeline.collector
    # A subscriber that never reads, for the whole test: it must cost the others nothing
    # (checked below: the steady camera keeps going, every file label arrives).
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

        # 3. The file plays to its end; what /metrics counts matches what was received
        #    (lossless: every frame of the file is one label, once the last one is through).
        c.wait_event("file", ("ended",), timeout=30)
        wait_until(lambda: metric(pipeline.metrics(), "adafocus_frames_processed_total",
                                  stream="file") == len(c.labels("file")) == CLIP_FRAMES,
                   30, "every frame of the file processed and received")
        # The worker writes its counters every half second: /metrics catches up with
        # what was received by then.
        labelled = {stream: len(c.labels(stream)) for stream in LIVE}
        received = sum(len(c.labels(s)) + len(c.events(s)) for s in (*LIVE, "file", "dead"))
        wait_until(lambda: all(metric(pipeline.metrics(), "adafocus_frames_processed_total",
                                      stream=stream) >= count > 0
                               for stream, count in labelled.items()), 10,
                   "every received label counted in /metrics")
        before = pipeline.metrics()
        assert metric(before, "adafocus_messages_published_total") >= received
        for stream in STEADY:
            wait_until(lambda stream=stream: metric(
                pipeline.metrics(), "adafocus_frames_processed_total", stream=stream
            ) > metric(before, "adafocus_frames_processed_total", stream=stream), 30,
                f"{stream}'s counters moving")
            assert metric(before, "adafocus_frames_decoded_total", stream=stream) > 0
        assert metric(before, "adafocus_latency_seconds_count", stream="cam") > 0

        # 4. A killed producer is restarted; its stream resumes; the others never stop.
        (old_pid,) = pipeline.producer_pids("cam")
        last_seq = c.labels("cam")[-1]["seq"]
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        c.wait_event("cam", ("reconnecting",), since=killed_at, detail="SIGKILL", timeout=30)
        c.wait_labels("steady", count=5, since=killed_at, timeout=30)  # the others go on
        resumed = c.wait_event("cam", ("up",), since=killed_at, timeout=30)
        assert resumed is not None and len(pipeline.producer_pids("cam")) == 2
        later = c.wait_labels("cam", count=5, since=killed_at, timeout=30)
        assert later[-1]["seq"] > last_seq

        # 5. The RTSP server dies: that stream reconnects, the others are unaffected, and
        #    it recovers when the server is back (on the same port).
        server.kill()
        lost_at = time.monotonic()
        c.wait_event("rtsp", ("reconnecting", "stalled"), since=lost_at, timeout=30)
        c.wait_labels("steady", count=20, since=lost_at, timeout=30)  # the others go on
        # Once the server is gone, only what its ring still held can be labelled.
        assert len(c.labels("rtsp", since=lost_at)) <= RING_SLOTS, "labels from a dead server"
        server.start()
        back_at = time.monotonic()
        c.wait_event("rtsp", ("up",), since=back_at, timeout=30)
        c.wait_labels("rtsp", count=3, since=back_at, timeout=30)

        # Throughout: every stream's seq only grew.
        for stream in (*LIVE, "file"):
            assert_seq_increasing(c.labels(stream), stream)
        assert c.malformed == 0

        # 6. SIGTERM ends everything with status 0, final events out, no /dev/shm left.
        stop_at = time.monotonic()
        assert pipeline.terminate(timeout=60) == 0
        for stream in LIVE:
            wait_until(lambda stream=stream: c.events(stream, since=stop_at)[-1:]
                       and c.events(stream, since=stop_at)[-1]["state"] == "down", 10,
                       f"{stream}'s final down")
        assert pipeline.rings() == []
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc
    finally:
        stalled_reader.close()
        pipeline.close()
