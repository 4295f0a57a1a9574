"""Admission: a stream list this host cannot serve is refused before anything of it
starts, with one line naming the limit.

Why: a config with 1000 streams used to be accepted and the supervisor spawned
producers until the host ran out of memory, taking the streams it already served
down with it. Every way streams are added (the start, a SIGHUP reload, anything
that persists a change and reloads) goes through `admit`, which checks:

- `limits.max_streams`: the streams this shard would serve after the change;
- memory: what the added streams will take, estimated from their rings (exact)
  and the producer memory per stream and per process (measured, see below),
  against the memory available now (MemAvailable, or the cgroup's limit when it is
  lower: a container) with HEADROOM to spare; and their rings against /dev/shm,
  whose overflow is a SIGBUS at the first write, not an error at creation.

The worker is not estimated: it is loaded before the first check, so what it
takes is already missing from the available memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from stream.config import IngestSection, LimitsSection, StreamSection
from stream.ingest.uri import parse_source
from stream.ring import ring_bytes, shared_memory_free

MIB = 2**20
# Measured with `python -m stream.bench.memory` (README.md "Performance"): the PSS
# of a producer process with no stream, and what each stream adds to it, rounded up.
PROCESS_BYTES = 48 * MIB
STREAM_BYTES = {"synthetic": 4 * MIB}  # a rendered scene
DECODED_STREAM_BYTES = 32 * MIB  # PyAV: demuxer, decoder and scaler buffers (up to 1080p)
HEADROOM = 0.8  # of the available memory, at most this share is promised to new streams


class AdmissionError(ValueError):
    """A change beyond this host's limits; the message is one line naming the limit."""


def admit(total: int, added: Sequence[StreamSection], limits: LimitsSection,
          ingest: IngestSection, frame_size: tuple[int, int] | None, new_processes: int,
          available: int | None = None, shm_free: int | None = None) -> None:
    """Raise AdmissionError unless `total` streams may be served after adding `added`
    (which need `new_processes` more producer processes). Memory is checked once
    the rings' `frame_size` is known; `available` and `shm_free` default to what
    the host has now."""
    if total > limits.max_streams:
        raise AdmissionError(
            f"limits.max_streams: {total} streams to serve, the limit is {limits.max_streams} "
            "(raise it if this host has the memory and CPU, or shard the streams)")
    if frame_size is None or not added:
        return
    rings = len(added) * ring_bytes(ingest.ring_slots, *frame_size)
    shm = shared_memory_free() if shm_free is None else shm_free
    if rings > shm:
        raise AdmissionError(
            f"ingest.ring_slots: {len(added)} stream(s) x {ingest.ring_slots} slots of "
            f"{frame_size[1]}x{frame_size[0]} frames need {rings / MIB:.0f} MiB of shared "
            f"memory, /dev/shm has {shm / MIB:.0f} MiB free")
    producers = sum(stream_bytes(s) for s in added) + new_processes * PROCESS_BYTES
    need = rings + producers
    have = available_memory() if available is None else available
    if need > HEADROOM * have:
        raise AdmissionError(
            f"memory: {len(added)} more stream(s) need about {need / MIB:.0f} MiB "
            f"({rings / MIB:.0f} MiB of frame rings, {producers / MIB:.0f} MiB of producers), "
            "the host has "
            f"{have / MIB:.0f} MiB available ({HEADROOM:.0%} of it may be promised)")


def stream_bytes(section: StreamSection) -> int:
    """The producer memory one stream adds (its thread, source and buffers)."""
    return STREAM_BYTES.get(parse_source(section.uri).kind, DECODED_STREAM_BYTES)


def processes_for(streams: int, per_process: int) -> int:
    return math.ceil(streams / per_process)


def available_memory(meminfo: Path = Path("/proc/meminfo"),
                     cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Bytes that can still be allocated: MemAvailable, or less when this process's
    cgroup (v2) has a lower limit left."""
    available = None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    if available is None:  # not Linux enough: nothing to compare with
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        used = int((cgroup / "memory.current").read_text())
    except (OSError, ValueError):
        return available
    return available if limit == "max" else min(available, int(limit) - used)
