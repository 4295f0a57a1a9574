"""A real RTSP camera for the tests: Debian's gst-rtsp-server (through the system
Python, which has python3-gi) serving a file on 127.0.0.1, or a silent TCP
server that accepts and never answers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from stream.bench import rtsp_camera
from tests.support.net import free_port

REQUIRE_RTSP_ENV = "ADAFOCUS_REQUIRE_RTSP"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_CAMERA = Path(rtsp_camera.__file__)


def require_rtsp(reason: str) -> None:
    """Skip, or fail when CI demands the RTSP tests really run
    (ADAFOCUS_REQUIRE_RTSP=1, set by .ci/run)."""
    if os.environ.get(REQUIRE_RTSP_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_RTSP_ENV}=1 forbids skipping)")
    pytest.skip(reason)


class RtspServer:
    """stream/bench/rtsp_camera.py in a child process on 127.0.0.1."""

    def __init__(self, workdir: Path, clip: Path | None, mount: str, silent: bool):
        self.port = free_port()
        self.mount = mount
        self._args = [SYSTEM_PYTHON, str(RTSP_CAMERA), "--port", str(self.port)]
        self._args += ["--silent"] if silent else ["--mount", mount, "--file", str(clip)]
        self._log = workdir / f"rtsp-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def url(self, path: str | None = None, userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path or self.mount}"

    def start(self) -> RtspServer:
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(self._args, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"RTSP server exited: {self._log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"RTSP server did not listen on {self.port} within 15 s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def gst_rtsp_problem() -> str | None:
    """None if /usr/bin/python3 can run gst-rtsp-server, else why not."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import GstRtspServer"
    )
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30
    )
    if result.returncode:
        return f"gst-rtsp-server for {SYSTEM_PYTHON} is missing: {result.stderr.strip()[-300:]}"
    return None
