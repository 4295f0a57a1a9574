"""The run directory: what one pipeline keeps on disk while it runs.

Each supervisor works in its own folder in the temp directory
(`adafocus-<pid>-<random>`): the internal results socket (`results.ipc`) and the
metric files every process writes (client_python multiprocess mode). When
`PROMETHEUS_MULTIPROC_DIR` is set (the container images set it, to a writable
tmpfs), the metric files go to a folder of this run inside it instead, named the
same way: two pipelines started with the same environment must never share or
clear each other's files, and a second `run` that fails on its ports must not
have touched the first one's (the folder is made only after the ports are bound).

Folders of supervisors that died without cleaning up (SIGKILL, OOM) are swept at
the next start, like their shared-memory rings.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from prometheus_client import values

from stream.metrics import MULTIPROC_ENV
from stream.ring import pid_alive

RUN_PREFIX = "adafocus-"
_RUN_NAME = re.compile(rf"{RUN_PREFIX}(\d+)-[A-Za-z0-9_]+")

log = logging.getLogger("adafocus.supervisor")


def sweep_dead_runs(parent: Path) -> list[Path]:
    """Remove the run folders in `parent` whose supervisor no longer exists."""
    removed = []
    for path in parent.glob(RUN_PREFIX + "*"):
        match = _RUN_NAME.fullmatch(path.name)
        if match and path.is_dir() and not pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class RunDirectory:
    """The folder of this run and the metrics directory its processes share."""

    def __init__(self) -> None:
        temp = Path(tempfile.gettempdir())
        swept = sweep_dead_runs(temp)
        self.path = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=temp))
        self._environment_metrics = os.environ.get(MULTIPROC_ENV)
        self.metrics_dir: Path | None = None
        if swept:
            log.info("removed %d run folder(s) left by dead supervisors", len(swept))

    @property
    def results_endpoint(self) -> str:
        """The internal PULL's address (stream.serve.forwarder)."""
        return f"ipc://{self.path / 'results.ipc'}"

    def prepare_metrics(self) -> None:
        """Make this run's metrics folder and point PROMETHEUS_MULTIPROC_DIR at it
        (children inherit the variable at spawn). Call only once the ports are
        bound: until then nothing shared may be touched."""
        if self._environment_metrics:
            shared = Path(self._environment_metrics)
            shared.mkdir(parents=True, exist_ok=True)
            sweep_dead_runs(shared)
            self.metrics_dir = Path(
                tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=shared)
            )
        else:
            self.metrics_dir = self.path / "metrics"
            self.metrics_dir.mkdir()
        os.environ[MULTIPROC_ENV] = str(self.metrics_dir)
        # client_python picks its value class when first imported; if that happened
        # before the variable was set, pick again so this process's metrics
        # (messages_published, the stream states) go to the shared files too.
        values.ValueClass = values.get_value_class()

    def remove(self) -> None:
        """Delete the run's folders and give the environment back as it was."""
        if self._environment_metrics is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._environment_metrics
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)
