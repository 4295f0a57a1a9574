"""An API change to the streams, made the way an operator's edit is.

Each change (add, replace, remove) is checked, written to the state file
(stream.serve.api.overlay) and applied by asking the supervisor to reload,
exactly as after a SIGHUP: the supervisor gains no second way of changing
streams, and the API and SIGHUP can never disagree about what runs. Changes are
made one at a time. When the reload fails (someone broke the config file in the
meantime) the state file is put back as it was and the caller hears why.

Problems are `ChangeError`s with the HTTP status they mean: 422 for a body that
the config file's schema refuses (each problem at its key path, never echoing a
value), 404 for an unknown stream, 409 for a change that conflicts with the
pipeline (an id taken, the last stream, a config file that no longer loads, a
stream another shard serves), 503 when the change could not be persisted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adafocus.schema import ValidationError, problems
from stream.config import ConfigError, PipelineConfig, ShardSection, StreamSection, load_config
from stream.serve.api.overlay import (
    StateFile,
    merged,
    read_state,
    state_path,
    with_stream,
    without_stream,
    write_state,
)
from stream.serve.sharding import owns

APPLY_TIMEOUT_S = 30.0
# Applies the persisted change (a reload); returns the problem, or None when applied.
Apply = Callable[[float], "str | None"]
Edit = Callable[[PipelineConfig, "StateFile | None", PipelineConfig], "StateFile | None"]


class ChangeError(Exception):
    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status = status
        self.problems = problems


def parse_stream(body: Any, stream_id: str | None = None) -> StreamSection:
    """A request body validated exactly like a `streams` entry of the config file.
    With `stream_id` (PUT), `id` may be left out, and must match when given."""
    if not isinstance(body, dict):
        raise ChangeError(422, ["body: expected a JSON object"])
    if stream_id is not None:
        if body.get("id", stream_id) != stream_id:
            raise ChangeError(422, ["id: must be the stream id of the URL"])
        body = {**body, "id": stream_id}
    try:
        return StreamSection.model_validate(body)
    except ValidationError as exc:
        raise ChangeError(422, problems(exc, StreamSection)) from None


class StreamChanges:
    """Add, replace and remove streams of the pipeline started from `config_path`.
    `shard` is the shard this process serves (it may come from the command line)."""

    def __init__(self, config_path: Path | None, shard: ShardSection, apply: Apply) -> None:
        self._config_path = config_path
        self._shard = shard
        self._apply = apply
        self._lock = threading.Lock()

    def add(self, body: Any) -> StreamSection:
        section = parse_stream(body)
        self._owned(section.id)

        def edit(file: PipelineConfig, state: StateFile | None,
                 running: PipelineConfig) -> StateFile | None:
            if any(s.id == section.id for s in running.streams):
                raise ChangeError(409, [f"id: stream {section.id!r} exists (PUT changes it)"])
            return with_stream(file, state, section)

        self._change(edit)
        return section

    def replace(self, stream_id: str, body: Any) -> StreamSection:
        section = parse_stream(body, stream_id)

        def edit(file: PipelineConfig, state: StateFile | None,
                 running: PipelineConfig) -> StateFile | None:
            self._known(running, stream_id)
            return with_stream(file, state, section)

        self._change(edit)
        return section

    def remove(self, stream_id: str) -> None:
        def edit(file: PipelineConfig, state: StateFile | None,
                 running: PipelineConfig) -> StateFile | None:
            self._known(running, stream_id)
            return without_stream(file, state, stream_id)

        self._change(edit)

    def _owned(self, stream_id: str) -> None:
        shard = self._shard
        if not owns(stream_id, shard.index, shard.count):
            raise ChangeError(409, [f"id: stream {stream_id!r} belongs to another shard than "
                                    f"this one ({shard.index}/{shard.count}); add it there"])

    def _known(self, running: PipelineConfig, stream_id: str) -> None:
        if not any(s.id == stream_id for s in running.streams) or not owns(
                stream_id, self._shard.index, self._shard.count):
            raise ChangeError(404, [f"no stream {stream_id!r}"])

    def _change(self, edit: Edit) -> None:
        if self._config_path is None:
            raise ChangeError(409, ["this pipeline was not started from a config file: "
                                    "there is nowhere to keep a change"])
        if not self._lock.acquire(timeout=APPLY_TIMEOUT_S):
            raise ChangeError(503, ["another change is still being applied; try again"])
        try:
            self._change_locked(self._config_path, edit)
        finally:
            self._lock.release()

    def _change_locked(self, config_path: Path, edit: Edit) -> None:
        try:
            file = load_config(config_path)
            path = state_path(file, config_path)
            before = read_state(path)
            running = merged(file, before)
        except ConfigError as exc:
            raise ChangeError(409, [f"the config does not load, fix it first: {p}"
                                    for p in exc.problems]) from None
        after = edit(file, before, running)
        try:
            merged(file, after)
        except ConfigError as exc:
            raise ChangeError(409, exc.problems) from None
        try:
            write_state(path, after)
        except OSError as exc:
            raise ChangeError(503, [f"api.state_file: cannot write {path}: "
                                    f"{exc.strerror or exc}"]) from None
        problem = self._apply(APPLY_TIMEOUT_S)
        if problem is not None:
            write_state(path, before)
            raise ChangeError(409, [f"not applied, the state file is as it was: {problem}"])
