"""Ingestion benchmark: decode + resize + ring throughput, and the ring's cost.

    python -m stream.bench.ingest [--frames 600] [--frame-size 224x224]
        [--sources 640x360 1280x720] [--decode-threads 1] [--out FILE]

1. Throughput: for H.264 clips of each `--sources` size (made with ffmpeg), real
   producers (files played as fast as possible) decode, scale to the model's frame
   size and write into their rings while this process drains every ring
   losslessly, like a worker in lossless mode (`run_producer_group`): 1 and 4
   streams in a process each, and 16 streams in one process, as the pipeline
   groups them. Frames/s = frames / (last capture - first capture), so
   process start-up and stream opening are not counted; neither are they, nor
   the processes' exit, in CPU per frame: the producers' CPU time (/proc) from the
   moment every stream has delivered a frame until the first stream is 95% through
   its clip (before any ends), over the frames delivered in between. Each row runs
   once per `--decode-threads` value (`ingest.decode_threads`; 0: libav's own
   thread pools), side by side in one run.
2. Ring overhead: per-frame time of `write` + `read_next` against the two plain
   `np.copyto` calls that move the same bytes (one in, one out).

Prints a table and writes the figures to a JSON file. Not a test: nothing is
asserted; numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import av
import numpy as np
import zmq

from stream.bench import procstat
from stream.config import IngestSection, StreamSection
from stream.ingest.group import run_producer_group
from stream.ring import FrameRing, ring_name
from stream.wire.messages import decode

RESOLUTIONS = ((640, 360), (1280, 720))
LAYOUTS = ((1, 1), (4, 1), (16, 16))  # (streams, streams per process)
MIN_CPU_S = 0.2  # /proc counts CPU in clock ticks (10 ms): a shorter window is not measured


def make_clip(directory: Path, width: int, height: int, frames: int) -> Path:
    """An H.264 clip like a camera's: 30 fps, keyframe every second, no B-frames."""
    path = directory / f"bench-{width}x{height}-{frames}.mp4"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
             "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast",
             "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
    return path


def _cpu_seconds(procs: list) -> float:
    """The processes' CPU seconds so far; NaN when one has already gone."""
    seconds = [procstat.cpu_seconds(p.pid) for p in procs]
    return float("nan") if None in seconds else sum(seconds)


def _ms_per_frame(cpu: list[tuple[float, int]]) -> float | None:
    """CPU milliseconds per frame between the two (CPU s, frames) samples; None when
    the window was too short for /proc's clock ticks to measure it."""
    if len(cpu) < 2 or not cpu[1][0] - cpu[0][0] >= MIN_CPU_S or cpu[1][1] <= cpu[0][1]:
        return None
    return round((cpu[1][0] - cpu[0][0]) / (cpu[1][1] - cpu[0][1]) * 1e3, 3)


def throughput(clip: Path, frames: int, streams: int, per_process: int, height: int,
               width: int, ingest: IngestSection) -> dict:
    """Run `streams` producers on `clip` at once, `per_process` per process; drain
    their rings here."""
    context = zmq.Context()
    sink = context.socket(zmq.PULL)
    sink.bind("tcp://127.0.0.1:*")
    endpoint = sink.getsockopt_string(zmq.LAST_ENDPOINT)
    tag = uuid.uuid4().hex[:6]
    rings = [FrameRing.create(ring_name(f"bench-{tag}", f"s{i}"), 64, height, width)
             for i in range(streams)]
    ctx = multiprocessing.get_context("spawn")
    members = [(StreamSection(id=f"s{i}", uri=str(clip), realtime=False), ring.name)
               for i, ring in enumerate(rings)]
    procs = [ctx.Process(target=run_producer_group,
                         args=(members[i:i + per_process], endpoint, ingest))
             for i in range(0, streams, per_process)]
    cpu: list[tuple[float, int]] = []  # (producers' CPU s, frames read): from, until
    out = np.empty((height, width, 3), np.uint8)
    first: list[float | None] = [None] * streams
    last = [0.0] * streams
    read = [0] * streams
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs) or any(r.fill() > 0 for r in rings):
            idle = True
            for i, ring in enumerate(rings):
                meta = ring.read_next(out)
                if meta is not None:
                    idle = False
                    read[i] += 1
                    first[i] = meta.t_capture if first[i] is None else first[i]
                    last[i] = meta.t_capture
            if len(cpu) == 0 and all(read) or len(cpu) == 1 and max(read) >= 0.95 * frames:
                cpu.append((_cpu_seconds(procs), sum(read)))
            if idle:
                time.sleep(0.0005)
        for p in procs:
            p.join()
        states = []
        while sink.poll(0):
            states.append(decode(sink.recv_multipart())[1]["state"])
        written = [ring.written for ring in rings]
        overwritten = [ring.overwritten for ring in rings]
    finally:
        for ring in rings:
            ring.close()
            ring.unlink()
        sink.close(0)
        context.term()
    if states.count("ended") != streams or any(f is None for f in first):
        raise RuntimeError(f"a producer did not finish cleanly: events {states}")
    span = max(last) - min(f for f in first if f is not None)
    total = sum(written)
    return {
        "streams": streams,
        "streams_per_process": per_process,
        "decode_threads": ingest.decode_threads,
        "frames": total,
        "seconds": round(span, 3),
        "fps_total": round(total / span, 1),
        "fps_per_stream": round(total / span / streams, 1),
        "cpu_ms_per_frame": _ms_per_frame(cpu),
        "overwritten": sum(overwritten),
        "exit_codes": [p.exitcode for p in procs],
    }


def ring_overhead(height: int, width: int, slots: int = 8, repeat: int = 2000) -> dict:
    """Microseconds per frame: ring write + read_next vs two plain numpy copies
    through the same number of slots (so both pay the same cache misses)."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    out = np.empty_like(image)
    plain = np.empty((slots, height, width, 3), np.uint8)
    name = ring_name(f"bench-{uuid.uuid4().hex[:6]}", "overhead")
    ring = FrameRing.create(name, slots, height, width)
    try:
        def per_frame(fn) -> float:
            best = float("inf")
            for _ in range(7):
                start = time.perf_counter()
                fn()
                best = min(best, (time.perf_counter() - start) / repeat)
            return best * 1e6

        def copies() -> None:
            for i in range(repeat):
                np.copyto(plain[i % slots], image)
                np.copyto(out, plain[i % slots])

        seq = iter(range(10**9))

        def ring_round_trip() -> None:
            for _ in range(repeat):
                ring.write(image, next(seq), 0.0, 0.0)
                ring.read_next(out)

        copy_us, ring_us = per_frame(copies), per_frame(ring_round_trip)
    finally:
        ring.close()
        ring.unlink()
    return {
        "frame": f"{width}x{height}",
        "bytes": image.nbytes,
        "numpy_2_copies_us": round(copy_us, 2),
        "ring_write_read_us": round(ring_us, 2),
        "overhead_us": round(ring_us - copy_us, 2),
    }


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames per clip")
    parser.add_argument("--frame-size", default="224x224", help="ring frame WxH (model input)")
    parser.add_argument("--out", default="bench-results/ingest.json")
    parser.add_argument("--media-dir", default=None, help="keep/reuse clips here")
    parser.add_argument("--sources", nargs="+", default=[f"{w}x{h}" for w, h in RESOLUTIONS],
                        help="clip sizes WxH (default %(default)s)")
    parser.add_argument("--decode-threads", nargs="+", type=int, default=[1],
                        help="ingest.decode_threads values to compare (0: libav's pools)")
    args = parser.parse_args(argv)
    ring_w, ring_h = parse_size(args.frame_size)
    media = Path(args.media_dir or tempfile.mkdtemp(prefix="bench-ingest-"))
    media.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "pyav": av.__version__,
                    "ffmpeg": ".".join(map(str, av.library_versions["libavcodec"]))},
        "ring_frame": f"{ring_w}x{ring_h}",
        "throughput": [],
        "ring_overhead": [],
    }
    sources = [parse_size(text) for text in args.sources]
    print(f"decode + scale to {ring_w}x{ring_h} + ring write, files as fast as possible")
    print(f"{'source':>10} {'streams':>7} {'/process':>8} {'threads':>7} {'frames':>7} "
          f"{'fps total':>10} {'fps/stream':>10} {'CPU ms/frame':>12}")
    for width, height in sources:
        clip = make_clip(media, width, height, args.frames)
        for streams, per_process in LAYOUTS:
            for threads in args.decode_threads:
                row = throughput(clip, args.frames, streams, per_process, ring_h, ring_w,
                                 IngestSection(decode_threads=threads))
                row["source"] = f"{width}x{height} h264"
                results["throughput"].append(row)
                print(f"{f'{width}x{height}':>10} {streams:>7} {per_process:>8} {threads:>7} "
                      f"{row['frames']:>7} {row['fps_total']:>10} {row['fps_per_stream']:>10} "
                      f"{row['cpu_ms_per_frame'] or 'n/a':>12}")
    print("\nring write+read_next vs two np.copyto (us per frame)")
    print(f"{'frame':>10} {'bytes':>8} {'2 copies':>9} {'ring':>9} {'overhead':>9}")
    for width, height in ((16, 16), (ring_w, ring_h), *sources):  # 16x16: the fixed cost
        row = ring_overhead(height, width)
        results["ring_overhead"].append(row)
        print(f"{row['frame']:>10} {row['bytes']:>8} {row['numpy_2_copies_us']:>9} "
              f"{row['ring_write_read_us']:>9} {row['overhead_us']:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
