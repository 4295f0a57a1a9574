"""The run directory: what one pipeline keeps on disk while it runs.

Each supervisor works in its own folder in the temp directory
(`adafocus-<pid>-*`): the internal results socket (`results.ipc`) and, unless
`PROMETHEUS_MULTIPROC_DIR` names another place, the metric files every process
writes (client_python multiprocess mode). The folder is removed at shutdown.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import values

from stream.metrics import MULTIPROC_ENV, reset_multiprocess_dir

RUN_PREFIX = "adafocus-"


class RunDirectory:
    """The folder of this run and the metrics directory its processes share."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-"))
        self._owns_metrics_env = False

    @property
    def results_endpoint(self) -> str:
        """The internal PULL's address (stream.serve.forwarder)."""
        return f"ipc://{self.path / 'results.ipc'}"

    def prepare_metrics(self) -> None:
        """Use PROMETHEUS_MULTIPROC_DIR, or a folder of this run when it is unset,
        and empty it so an earlier run's values are never aggregated into this one.
        Children inherit the variable at spawn."""
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            directory = str(self.path / "metrics")
            os.environ[MULTIPROC_ENV] = directory
            self._owns_metrics_env = True
        reset_multiprocess_dir(directory)
        # client_python picks its value class when first imported; if that happened
        # before the variable was set, pick again so this process's metrics
        # (messages_published) go to the shared files too.
        values.ValueClass = values.get_value_class()

    def remove(self) -> None:
        if self._owns_metrics_env:
            os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(self.path, ignore_errors=True)
