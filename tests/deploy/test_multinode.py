"""Scale-out on one machine: two real pipelines (shards 0/2 and 1/2) over the same
four streams, one of them a real RTSP camera, and the proxy in front of them.
Both read one config that does not shard (as every StatefulSet pod reads one
ConfigMap): one worker gets its shard from `--shard 0/2`, the other from the
environment as a Kubernetes pod does (ADAFOCUS_SHARD_COUNT and the hostname
ordinal). A subscriber on the proxy sees every stream, each from exactly one
worker; a SIGHUP reload keeps each worker's shard; and killing one worker (its
whole process group, as when a node dies) stops only its streams while the
proxy keeps serving the other's."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from stream.serve.sharding import shard_of
from stream.wire.messages import decode
from tests.support.net import free_port, wait_until
from tests.support.pipeline import Pipeline, pipeline_config, sweep_shared_memory, tiny_checkpoint
from tests.support.processes import Process

pytestmark = [pytest.mark.slow, pytest.mark.rtsp, pytest.mark.timeout(150)]

SYNTHETIC = [f"cam-{i}" for i in range(1, 40)]


def pick_streams(rtsp_id: str) -> dict[int, list[str]]:
    """Four stream ids, two per shard, the RTSP camera among them (ids chosen by
    the real hash, so the test does not rely on a lucky split)."""
    shards: dict[int, list[str]] = {0: [], 1: []}
    shards[shard_of(rtsp_id, 2)].append(rtsp_id)
    for sid in SYNTHETIC:
        if len(shards[shard_of(sid, 2)]) < 2:
            shards[shard_of(sid, 2)].append(sid)
    assert all(len(ids) == 2 for ids in shards.values())
    return shards


# The same shard 1/2 the way Kubernetes gives it: the count in the pod spec, the
# index in the StatefulSet pod's hostname (an ambient ADAFOCUS_SHARD_INDEX is blanked).
SHARD_SOURCES = {
    0: {"args": ("--shard", "0/2"), "env": {}},
    1: {
        "args": (),
        "env": {
            "ADAFOCUS_SHARD_COUNT": "2",
            "ADAFOCUS_SHARD_INDEX": "",
            "HOSTNAME": "adafocus-worker-1",
        },
    },
}


def wait_for_log(worker: Pipeline, text: str, timeout: float = 30.0) -> None:
    wait_until(lambda: text in worker.log_text(), timeout,
               f"{text!r} in the log:\n{worker.log_tail()}")


def collect(sub: zmq.Socket, seconds: float, until: set[str] | None = None) -> dict[str, int]:
    """Label messages per stream received within `seconds` (or until all of `until`)."""
    counts: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sub.poll(100):
            frames = sub.recv_multipart()
            kind, message = decode(frames)
            assert kind == "label" and frames[0].decode() == f"label.{message['stream']}"
            counts[message["stream"]] = counts.get(message["stream"], 0) + 1
        if until is not None and until <= counts.keys():
            break
    return counts


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.stop()
    sweep_shared_memory()


def test_two_shards_behind_a_proxy_serve_every_stream_once_and_survive_a_dead_worker(
    tmp_path: Path, rtsp_server, context: zmq.Context, processes: list[Process]
) -> None:
    shards = pick_streams("gate-rtsp")
    uris = {sid: f"synthetic://digits?fps=10&seed={i}" for i, sid in enumerate(SYNTHETIC)}
    uris["gate-rtsp"] = rtsp_server().url()
    streams = [{"id": sid, "uri": uris[sid]} for sid in sorted(shards[0] + shards[1])]
    everything = {s["id"] for s in streams}
    checkpoint = tiny_checkpoint(tmp_path)

    workers = []
    for index in (0, 1):
        # no shard section: 0/1, every stream, unless the shard comes from elsewhere
        config = pipeline_config(checkpoint, streams)
        workers.append(Pipeline(tmp_path, config, f"worker-{index}", collect=False,
                                **SHARD_SOURCES[index]))
        processes.append(workers[-1])
    proxy_port = free_port()
    proxy = Process(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "proxy",
            "--bind",
            f"tcp://127.0.0.1:{proxy_port}",
            "--connect",
            ",".join(w.publish for w in workers),
        ],
        tmp_path / "proxy.log",
    )
    processes.append(proxy)

    direct = []
    for w in workers:
        sub = context.socket(zmq.SUB)
        sub.subscribe(b"label.")
        sub.connect(w.publish)
        direct.append(sub)
    via_proxy = context.socket(zmq.SUB)
    via_proxy.subscribe(b"label.")
    via_proxy.connect(f"tcp://127.0.0.1:{proxy_port}")

    for w in workers:
        w.wait_serving(60)
    seen = collect(via_proxy, 60, until=everything)
    assert seen.keys() == everything, f"via proxy: {seen}; logs:\n{workers[0].log_tail()}"

    # A subscriber that joins late, through the proxy, learns every stream's state at once.
    late = context.socket(zmq.SUB)
    late.subscribe(b"event.")
    late.connect(f"tcp://127.0.0.1:{proxy_port}")
    states: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while states.keys() != everything and time.monotonic() < deadline:
        if late.poll(200):
            kind, event = decode(late.recv_multipart())
            states[event["stream"]] = event["state"]
    assert states.keys() == everything, states  # (the 4 s RTSP clip may be between plays)

    # Each stream comes from exactly one worker: the one its id hashes to.
    for index, sub in enumerate(direct):
        own = collect(sub, 20, until=set(shards[index]))
        assert own.keys() == set(shards[index]), f"worker {index} published {own}"
    wait_for_log(workers[0], "serving shard 0/2 (from --shard)")
    wait_for_log(workers[1], "serving shard 1/2 (from the environment)")

    # A reload re-reads the streams, not the shard: the file's 0/1 would add the others'.
    for w in workers:
        w.proc.send_signal(signal.SIGHUP)
    for w in workers:
        wait_for_log(w, "reload: 0 stream(s) added, 0 removed, 0 restarted, 2 unchanged")

    # A node dies: worker 1 and all its processes.
    workers[1].kill_group()
    wait_until(lambda: collect(via_proxy, 1.0).keys() == set(shards[0]), 30,
               "only worker 0's streams through the proxy")
    after = collect(via_proxy, 5)
    assert after.keys() == set(shards[0]), f"after killing worker 1: {after}"
    assert all(count >= 1 for count in after.values())
    assert proxy.proc.poll() is None
