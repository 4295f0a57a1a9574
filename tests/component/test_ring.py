"""The frame ring: ordering, exact drop accounting, torn-read protection across
processes, and who owns the shared memory segment."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from stream.ingest.sources.synthetic import PatternScene
from stream.ring import SHM_DIR, FrameRing, ring_name, sweep_stale_segments
from tests.support.net import wait_until
from tests.support.producers import FAST


def frame(value: int, height: int = 64, width: int = 64) -> np.ndarray:
    return np.full((height, width, 3), value % 256, np.uint8)


def test_read_next_returns_unread_frames_in_order_and_counts_lapped_ones_exactly(make_ring):
    ring = make_ring(slots=4, height=8, width=8)
    out = np.empty(ring.shape, np.uint8)
    for seq in range(10):
        ring.write(frame(seq, 8, 8), seq, seq * 0.04, 100.0 + seq, truth=seq % 3)
    got = []
    while (meta := ring.read_next(out)) is not None:
        assert (out == meta.seq).all()
        got.append(meta)
    assert [m.seq for m in got] == [6, 7, 8, 9]  # 0..5 were lapped by the writer
    assert ring.overwritten == 6
    assert got[0].pts == pytest.approx(0.24) and got[0].t_capture == 106.0 and got[0].truth == 0
    assert ring.fill() == 0.0


def test_read_latest_takes_the_newest_frame_and_reports_the_skipped_ones_as_stale(make_ring):
    ring = make_ring(slots=8, height=8, width=8)
    out = np.empty(ring.shape, np.uint8)
    for seq in range(5):
        ring.write(frame(seq, 8, 8), seq, None, 1.0)
    assert ring.fill() == pytest.approx(5 / 8)
    meta = ring.read_latest(out)
    assert (meta.seq, meta.skipped, meta.pts) == (4, 4, None)
    assert ring.overwritten == 0  # skipping on purpose is not an overwrite
    assert ring.read_latest(out) is None
    for seq in range(5, 20):  # 15 more into 8 slots: 7 lapped, 7 stale, 1 delivered
        ring.write(frame(seq, 8, 8), seq, None, 1.0)
    meta = ring.read_latest(out)
    assert (meta.seq, meta.skipped, ring.overwritten) == (19, 7, 7)


def test_read_recent_catches_up_on_a_burst_and_skips_only_beyond_it(make_ring):
    ring = make_ring(slots=8, height=8, width=8)
    out = np.empty(ring.shape, np.uint8)
    for seq in range(2):  # two frames at once: both are delivered, in order
        ring.write(frame(seq, 8, 8), seq, None, 1.0)
    assert [(m.seq, m.skipped) for m in (ring.read_recent(out, 2), ring.read_recent(out, 2))
            ] == [(0, 0), (1, 0)]
    for seq in range(2, 7):  # five behind: the older three are stale
        ring.write(frame(seq, 8, 8), seq, None, 1.0)
    meta = ring.read_recent(out, 2)
    assert (meta.seq, meta.skipped, ring.unread()) == (5, 3, 1)
    assert ring.read_recent(out, 2).seq == 6 and ring.read_recent(out, 2) is None
    with pytest.raises(ValueError, match="newest"):
        ring.read_recent(out, 0)


def test_peek_latest_copies_the_newest_frame_without_taking_it_from_the_reader(make_ring):
    ring = make_ring(slots=4, height=8, width=8)
    out = np.empty(ring.shape, np.uint8)
    assert ring.peek_latest(out) is None  # nothing written yet
    for seq in range(3):
        ring.write(frame(seq, 8, 8), seq, 0.5, 1.0)
    for _ in range(2):  # a preview may look as often as it likes
        meta = ring.peek_latest(out)
        assert (meta.seq, meta.pts) == (2, 0.5)
        assert np.array_equal(out, frame(2, 8, 8))
    assert ring.fill() == pytest.approx(3 / 4)  # the worker's unread frames are all there
    assert [ring.read_next(out).seq for _ in range(3)] == [0, 1, 2]
    assert ring.overwritten == 0


def test_write_rejects_wrong_frames_and_a_sequence_that_goes_back(make_ring):
    ring = make_ring(slots=2, height=8, width=8)
    with pytest.raises(ValueError, match="uint8 frames"):
        ring.write(np.zeros((8, 9, 3), np.uint8), 0, None, 0.0)
    with pytest.raises(ValueError, match="uint8 frames"):
        ring.write(np.zeros((8, 8, 3), np.float32), 0, None, 0.0)
    ring.write(frame(1, 8, 8), 5, None, 0.0)
    with pytest.raises(ValueError, match="seq must increase"):
        ring.write(frame(1, 8, 8), 5, None, 0.0)


def test_a_reattached_writer_continues_seq_and_new_epochs_are_stamped(make_ring):
    ring = make_ring(slots=4, height=8, width=8)
    writer = FrameRing.attach(ring.name)
    writer.new_epoch()
    writer.write(frame(0, 8, 8), 0, None, 0.0)
    writer.close()
    writer = FrameRing.attach(ring.name)  # a restarted producer
    assert writer.last_seq == 0 and writer.new_epoch() == 2
    writer.write(frame(1, 8, 8), writer.last_seq + 1, None, 0.0)
    writer.close()
    out = np.empty(ring.shape, np.uint8)
    metas = [ring.read_next(out), ring.read_next(out)]
    assert [(m.seq, m.epoch) for m in metas] == [(0, 1), (1, 2)]


def test_attach_and_unlink_are_reserved_to_their_roles(make_ring):
    ring = make_ring()
    attached = FrameRing.attach(ring.name)
    with pytest.raises(RuntimeError, match="not ours to unlink"):
        attached.unlink()
    attached.close()
    with pytest.raises(FileNotFoundError):
        FrameRing.attach(ring_name("no-such", "ring"))


# ----------------------------------------------------------------- across processes

HEIGHT, WIDTH, DISTINCT = 120, 160, 61  # ~57 KB frames: copies long enough to race


def _writer(name: str, seconds: float, done) -> None:
    """Writes as fast as it can (tens of thousands of frames/s) for `seconds`."""
    ring = FrameRing.attach(name)
    images = [frame(v, HEIGHT, WIDTH) for v in range(DISTINCT)]
    seq = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        ring.write(images[seq % DISTINCT], seq, seq * 0.5, float(seq), truth=seq % 7)
        seq += 1
    ring.close()
    done.set()


READS = {"read_next": lambda ring, out: ring.read_next(out),
         "read_latest": lambda ring, out: ring.read_latest(out),
         "read_recent": lambda ring, out: ring.read_recent(out, 2)}


def _reader(name: str, mode: str, done, result) -> None:
    ring = FrameRing.attach(name)
    out = np.empty(ring.shape, np.uint8)
    read = functools.partial(READS[mode], ring)
    delivered = skipped = torn = 0
    last = -1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = read(out)
        if meta is None:
            if done.is_set() and ring.fill() == 0:
                break
            continue
        value = meta.seq % DISTINCT
        consistent = (
            out[0, 0, 0] == value
            and out[-1, -1, -1] == value
            and (out == value).all()
            and meta.pts == meta.seq * 0.5
            and meta.t_capture == float(meta.seq)
            and meta.truth == meta.seq % 7
            and meta.seq > last
        )
        torn += not consistent
        last = meta.seq
        delivered += 1
        skipped += meta.skipped
    result.put((ring.written, delivered, skipped, ring.overwritten, torn, ring.torn_retries))
    ring.close()


@pytest.mark.parametrize("mode", list(READS))
def test_concurrent_writer_and_reader_processes_never_see_a_torn_frame_and_account_exactly(
    make_ring, mode
):
    """A writer process at full speed (far above 1000 frames/s) for 2 s into a
    2-slot ring laps the reader process constantly, often mid-copy. Every frame
    the reader returns is whole and matches its metadata, and
    delivered + overwritten + stale == written, exactly."""
    ring = make_ring(slots=2, height=HEIGHT, width=WIDTH)
    ctx = multiprocessing.get_context("spawn")
    result, done = ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_reader, args=(ring.name, mode, done, result))
    writer = ctx.Process(target=_writer, args=(ring.name, 2.0, done))
    reader.start()
    writer.start()
    try:
        written, delivered, skipped, overwritten, torn, retries = result.get(timeout=40)
    finally:
        for p in (writer, reader):
            p.join(10)
            if p.is_alive():
                p.kill()
    assert writer.exitcode == 0 and reader.exitcode == 0
    assert torn == 0
    assert delivered > 0
    assert delivered + overwritten + skipped == written
    print(f"written={written} delivered={delivered} overwritten={overwritten} "
          f"stale={skipped} torn_retries={retries}")


def test_attaching_from_an_unrelated_process_neither_unlinks_nor_warns(tmp_path):
    """gh-82300: a SharedMemory attach on Python < 3.13 registers with the
    attacher's resource tracker, which unlinks the segment when the attacher
    exits. Here the creator (a stand-in supervisor) and the attacher are
    siblings; after the attacher exits the segment must still be there and
    neither process may print anything."""
    name = ring_name("unrelated", "cam")
    creator = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, numpy as np
            from stream.ring import FrameRing
            ring = FrameRing.create({name!r}, 4, 16, 16)
            print("ready", flush=True)
            sys.stdin.readline()
            out = np.empty(ring.shape, np.uint8)
            meta = ring.read_next(out)
            print(meta.seq, int(out[0, 0, 0]), flush=True)
            ring.close()
            ring.unlink()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert creator.stdout.readline().strip() == "ready"
        attacher = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(f"""
                import numpy as np
                from stream.ring import FrameRing
                ring = FrameRing.attach({name!r})
                ring.write(np.full((16, 16, 3), 42, np.uint8), 7, None, 0.0)
                ring.close()
            """)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert attacher.returncode == 0, attacher.stderr
        assert attacher.stderr == ""
        time.sleep(0.3)  # a resource tracker would unlink right after its process exits
        assert (SHM_DIR / name).exists()
        out, err = creator.communicate("go\n", timeout=30)
    finally:
        if creator.poll() is None:
            creator.kill()
            creator.wait()
    assert out.split() == ["7", "42"]
    assert err == ""  # no KeyError noise, no "leaked shared_memory" warning
    assert not (SHM_DIR / name).exists()


def test_sweep_removes_segments_of_dead_creators_only(make_ring):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = SHM_DIR / ring_name("crashed-supervisor", "cam", pid=dead.pid)
    stale.write_bytes(b"\0" * 4096)
    live = make_ring()
    removed = sweep_stale_segments()
    assert stale.name in removed and not stale.exists()
    assert (SHM_DIR / live.name).exists()


def test_a_killed_producer_leaves_a_valid_ring_its_successor_continues_and_the_owner_unlinks(
    make_ring, start_producer, events
):
    """The supervisor (this test) owns the ring; its child producer is SIGKILLed
    mid-write. The segment stays, its frames stay readable, a restarted producer
    continues the sequence in a new epoch, and the owner's unlink removes it."""
    ring = make_ring(slots=16, height=64, width=64)
    out = np.empty(ring.shape, np.uint8)
    first = start_producer("cam", "synthetic://pattern?fps=100", ring, FAST)
    wait_until(lambda: ring.written >= 20, 20, "20 frames from the first producer")
    os.kill(first.pid, signal.SIGKILL)
    first.join(10)
    assert first.exitcode == -signal.SIGKILL
    assert (SHM_DIR / ring.name).exists()
    meta = ring.read_latest(out)
    assert meta is not None and meta.epoch == 1
    assert PatternScene.decode_index(out) == round(meta.pts * 100)  # whole frame, right pixels
    last_seq = ring.last_seq

    second = start_producer("cam", "synthetic://pattern?fps=100", ring, FAST)
    meta = wait_until(lambda: ring.read_next(out), 20, "a frame from the restarted producer")
    while meta.epoch == 1:  # frames the first producer wrote after our read_latest
        meta = wait_until(lambda: ring.read_next(out), 5, "the restarted producer's frames")
    assert meta.epoch == 2 and meta.seq > last_seq
    second.terminate()
    second.join(10)
    assert second.exitcode == 0
    ring.close()
    ring.unlink()
    assert not (SHM_DIR / ring.name).exists()
