"""Admission (stream.serve.admission): what a host refuses, in one line naming the
limit, from its stream count, memory and shared memory."""

from __future__ import annotations

import pytest

from stream.config import IngestSection, LimitsSection, StreamSection
from stream.ring import ring_bytes
from stream.serve.admission import (
    DECODED_STREAM_BYTES,
    MIB,
    PROCESS_BYTES,
    AdmissionError,
    admit,
    available_memory,
)

INGEST = IngestSection()


def cameras(count: int, uri: str = "rtsp://10.0.0.1/cam") -> list[StreamSection]:
    return [StreamSection(id=f"c{i}", uri=uri) for i in range(count)]


def test_more_streams_than_max_streams_are_refused_naming_the_key():
    limits = LimitsSection(max_streams=4)
    admit(4, cameras(4), limits, INGEST, None, 1)
    with pytest.raises(AdmissionError, match=r"^limits.max_streams: 5 streams to serve, the "
                                             r"limit is 4 \("):
        admit(5, cameras(1), limits, INGEST, None, 0)


def test_memory_is_estimated_from_rings_streams_and_processes_against_what_is_available():
    added = cameras(10)
    need = 10 * (ring_bytes(8, 128, 128) + DECODED_STREAM_BYTES) + PROCESS_BYTES
    plenty = 10 * need
    admit(10, added, LimitsSection(), INGEST, (128, 128), 1, available=plenty, shm_free=plenty)
    with pytest.raises(AdmissionError) as refused:
        admit(10, added, LimitsSection(), INGEST, (128, 128), 1, available=need, shm_free=plenty)
    line = str(refused.value)
    assert line.startswith(f"memory: 10 more stream(s) need about {need / MIB:.0f} MiB")
    assert "\n" not in line and "available" in line
    synthetic = cameras(10, "synthetic://pattern?fps=25")  # a rendered scene costs less
    admit(10, synthetic, LimitsSection(), INGEST, (128, 128), 1, available=need, shm_free=plenty)


def test_rings_beyond_dev_shm_are_refused_before_any_is_made():
    with pytest.raises(AdmissionError, match=r"^ingest.ring_slots: 3 stream\(s\) x 8 slots of "
                                             r"128x128 frames need .* /dev/shm has 1 MiB free"):
        admit(3, cameras(3), LimitsSection(), INGEST, (128, 128), 1, available=2**40,
              shm_free=MIB)


def test_available_memory_is_the_lower_of_meminfo_and_the_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert available_memory(meminfo, cgroup) == 4000000 * 1024  # no cgroup files
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("123\n")
    assert available_memory(meminfo, cgroup) == 4000000 * 1024
    (cgroup / "memory.max").write_text(f"{2 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{2**30}\n")
    assert available_memory(meminfo, cgroup) == 2**30
