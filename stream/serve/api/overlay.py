"""The state file: the API's changes to `streams`, kept beside the config file.

Why a second file and not an edit of the config: the config is the operator's
(comments, order, `${VAR}` placeholders, often mounted read-only), and a program
rewriting it would lose what it cannot parse back. So the API writes only what
it changed, and the running config is always "the file, with the state file
merged over its streams", computed the same way at start and at every SIGHUP
(`load_effective`): a restart or a reload can never undo an API change, and an
API change goes through exactly the reload a SIGHUP does.

Format (YAML, README.md "Contracts: configuration"):

    version: 1
    streams: [...]   # added or changed through the API: replace the file's stream of that id
    removed: [...]   # ids removed through the API: left out of the file's streams

Validated like the config (the same StreamSection), every problem named with
the file and key path. Written atomically (a temporary file in the same folder,
fsync, rename, fsync of the folder), mode 0600: URIs may hold passwords.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import model_validator

from adafocus.schema import LISTS_OK, Schema, ValidationError, located, problems
from stream.config import ConfigError, Name, PipelineConfig, StreamSection, load_config

HEADER = ("# Written by the adafocus-stream API: its changes to `streams`, merged over the\n"
          "# config file's streams at start and at every SIGHUP. Delete it to undo them all.\n")


class StateFile(Schema):
    version: Literal[1] = 1
    streams: Annotated[tuple[StreamSection, ...], LISTS_OK] = ()
    removed: Annotated[tuple[Name, ...], LISTS_OK] = ()

    @model_validator(mode="after")
    def _one_entry_per_id(self) -> StateFile:
        seen: set[str] = set()
        found = []
        for i, stream in enumerate(self.streams):
            if stream.id in seen or stream.id in self.removed:
                found.append((("streams", i, "id"), f"stream {stream.id!r} appears twice"))
            seen.add(stream.id)
        if found:
            raise located("state", found)
        return self

    def dump(self) -> dict[str, Any]:
        return {"version": self.version, "streams": [s.model_dump() for s in self.streams],
                "removed": list(self.removed)}


def state_path(config: PipelineConfig, config_path: Path) -> Path:
    """`api.state_file`, or `<config name>.state.yaml` beside the config file."""
    return config.api.state_file or config_path.with_name(config_path.stem + ".state.yaml")


def read_state(path: Path) -> StateFile | None:
    """The state file, None when there is none. ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        return StateFile.model_validate(yaml.safe_load(text) or {})
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except ValidationError as exc:
        raise ConfigError([f"{path}: {line}" for line in problems(exc, StateFile)]) from None


def write_state(path: Path, state: StateFile | None) -> None:
    """Replace the state file atomically (None: remove it). OSError on failure,
    with the file as it was."""
    if state is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _sync_folder(path.parent)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(HEADER + yaml.safe_dump(state.dump(), sort_keys=False))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merged(config: PipelineConfig, state: StateFile | None) -> PipelineConfig:
    """`config` with the state file's streams merged over its own: changed ones in
    place, removed ones left out, added ones at the end."""
    if state is None:
        return config
    changed = {s.id: s for s in state.streams}
    streams = [changed.pop(s.id, s) for s in config.streams if s.id not in state.removed]
    streams += changed.values()
    if not streams:
        raise ConfigError(["streams: at least one stream is required (the state file "
                           "removes every stream of the config file)"])
    return config.model_copy(update={"streams": tuple(streams)})


def with_stream(config: PipelineConfig, state: StateFile | None,
                section: StreamSection) -> StateFile | None:
    """The state after adding or changing `section` (`config`: the file alone)."""
    state = state or StateFile()
    own = next((s for s in config.streams if s.id == section.id), None)
    streams = [s for s in state.streams if s.id != section.id]
    if own != section:  # the same as the file's: nothing to remember
        streams.append(section)
    removed = [r for r in state.removed if r != section.id]
    return _tidy(config, streams, removed)


def without_stream(config: PipelineConfig, state: StateFile | None,
                   stream_id: str) -> StateFile | None:
    """The state after removing stream `stream_id`."""
    state = state or StateFile()
    streams = [s for s in state.streams if s.id != stream_id]
    removed = [*state.removed, stream_id]
    return _tidy(config, streams, removed)


def _tidy(config: PipelineConfig, streams: list[StreamSection],
          removed: list[str]) -> StateFile | None:
    """Only what still differs from the file; None when nothing does. (A removed
    id that the file no longer has needs no entry.)"""
    own = {s.id for s in config.streams}
    removed = sorted({r for r in removed if r in own})
    if not streams and not removed:
        return None
    return StateFile(streams=tuple(streams), removed=tuple(removed))


def load_effective(path: str | Path) -> PipelineConfig:
    """The running config: the file at `path` with its state file merged over it.
    ConfigError for a problem in either, naming the file and key."""
    path = Path(path)
    config = load_config(path)
    return merged(config, read_state(state_path(config, path)))
