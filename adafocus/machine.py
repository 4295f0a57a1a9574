"""The processor a measurement or a training run ran on, by name.

Why: figures (a training run's weights, a benchmark's throughput) depend on the
CPU, and `platform.processor()` is empty on most Linux systems, leaving only
"x86_64". The kernel's /proc/cpuinfo names the model ("AMD EPYC 7B13").
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
