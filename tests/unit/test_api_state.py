"""The API's changes to the streams: kept in a state file merged over the config
file's streams, written atomically, validated like the config, applied through a
reload whose outcome the caller hears."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.config import ConfigError, ShardSection, StreamSection, load_config
from stream.serve.api.changes import ChangeError, StreamChanges, parse_stream
from stream.serve.api.overlay import (
    load_effective,
    read_state,
    state_path,
    with_stream,
    without_stream,
    write_state,
)
from stream.serve.reload import ReloadRequests
from stream.serve.sharding import owns

pytestmark = pytest.mark.timeout(60)

SECRET = "pw-9f8e7d"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"checkpoint": "builtin:digits", "device": "cpu"},
        "streams": [{"id": "a", "uri": "synthetic://digits?seed=1"},
                    {"id": "b", "uri": "synthetic://digits?seed=2"}],
    }))
    return path


def ids(path: Path) -> list[str]:
    return [s.id for s in load_effective(path).streams]


class Reloads:
    """Stands in for the supervisor: records reloads, answers `problem`."""

    def __init__(self) -> None:
        self.count = 0
        self.problem: str | None = None

    def __call__(self, timeout_s: float) -> str | None:
        self.count += 1
        return self.problem


@pytest.fixture
def reloads() -> Reloads:
    return Reloads()


@pytest.fixture
def changes(config_path: Path, reloads: Reloads) -> StreamChanges:
    return StreamChanges(config_path, ShardSection(), reloads)


def test_the_state_file_is_merged_over_the_config_files_streams(config_path: Path) -> None:
    config = load_config(config_path)
    changed = StreamSection(id="b", uri="synthetic://pattern", realtime=False)
    added = StreamSection(id="c", uri="synthetic://digits?seed=3")
    state = with_stream(config, with_stream(config, None, changed), added)
    state = without_stream(config, state, "a")
    path = state_path(config, config_path)
    assert path == config_path.with_name("pipeline.state.yaml")
    write_state(path, state)
    running = load_effective(config_path)
    assert [(s.id, s.uri) for s in running.streams] == [("b", "synthetic://pattern"),
                                                         ("c", "synthetic://digits?seed=3")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # URIs may hold passwords


def test_undoing_every_change_leaves_no_state_file(config_path: Path,
                                                   changes: StreamChanges) -> None:
    changes.add({"id": "c", "uri": "synthetic://digits?seed=3"})
    changes.remove("a")
    path = config_path.with_name("pipeline.state.yaml")
    assert read_state(path).removed == ("a",)
    changes.remove("c")
    changes.add({"id": "a", "uri": "synthetic://digits?seed=1"})  # the file's own again
    assert not path.exists()
    assert ids(config_path) == ["a", "b"]


def test_a_change_is_persisted_then_applied_by_one_reload(
    config_path: Path, changes: StreamChanges, reloads: Reloads
) -> None:
    section = changes.replace("b", {"uri": "synthetic://pattern?fps=5", "realtime": False})
    assert (section.id, section.realtime, reloads.count) == ("b", False, 1)
    assert load_effective(config_path).streams[1] == section
    assert load_config(config_path).streams[1].uri == "synthetic://digits?seed=2"  # untouched


def test_a_body_is_validated_like_the_config_file_and_no_value_is_echoed() -> None:
    with pytest.raises(ChangeError) as caught:
        parse_stream({"id": "x y", "uri": f"ftp://u:{SECRET}@h/", "lossless": "yes", "fps": 3})
    assert caught.value.status == 422
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["id", "uri", "lossless", "fps"]
    assert "unknown key" in problems[3]
    assert not any(SECRET in p for p in problems)
    with pytest.raises(ChangeError, match="body: expected a JSON object"):
        parse_stream(["a"])
    with pytest.raises(ChangeError, match="id: must be the stream id of the URL"):
        parse_stream({"id": "b", "uri": "synthetic://pattern"}, "a")


@pytest.mark.parametrize("call, status", [
    (lambda c: c.add({"id": "a", "uri": "synthetic://pattern"}), 409),  # exists
    (lambda c: c.replace("zz", {"uri": "synthetic://pattern"}), 404),
    (lambda c: c.remove("zz"), 404),
])
def test_conflicts_and_unknown_streams_change_nothing(
    config_path: Path, changes: StreamChanges, reloads: Reloads, call: Any, status: int
) -> None:
    with pytest.raises(ChangeError) as caught:
        call(changes)
    assert caught.value.status == status
    assert reloads.count == 0 and not config_path.with_name("pipeline.state.yaml").exists()


def test_the_last_stream_cannot_be_removed(config_path: Path, changes: StreamChanges) -> None:
    changes.remove("a")
    with pytest.raises(ChangeError) as caught:
        changes.remove("b")
    assert caught.value.status == 409
    assert "at least one stream is required" in caught.value.problems[0]
    assert ids(config_path) == ["b"]


def test_a_failed_reload_puts_the_state_file_back(
    config_path: Path, changes: StreamChanges, reloads: Reloads
) -> None:
    changes.add({"id": "c", "uri": "synthetic://pattern"})
    before = config_path.with_name("pipeline.state.yaml").read_bytes()
    reloads.problem = "reload failed: streams[0].uri: ..."
    with pytest.raises(ChangeError) as caught:
        changes.add({"id": "d", "uri": "synthetic://pattern"})
    assert caught.value.status == 409 and "state file is as it was" in caught.value.problems[0]
    assert config_path.with_name("pipeline.state.yaml").read_bytes() == before


def test_a_broken_state_file_is_named_with_its_key_path(config_path: Path) -> None:
    path = config_path.with_name("pipeline.state.yaml")
    path.write_text(yaml.safe_dump({"version": 1, "streams": [{"id": "c", "uri": "nope://x"}],
                                    "removed": ["a"], "extra": 1}))
    with pytest.raises(ConfigError) as caught:
        load_effective(config_path)
    lines = caught.value.problems
    assert any(line.startswith(f"{path}: streams[0].uri:") for line in lines)
    assert any(line.startswith(f"{path}: extra: unknown key") for line in lines)


def test_a_stream_of_another_shard_is_refused(config_path: Path, reloads: Reloads) -> None:
    changes = StreamChanges(config_path, ShardSection(index=0, count=2), reloads)
    foreign = next(f"cam-{i}" for i in range(100) if not owns(f"cam-{i}", 0, 2))
    with pytest.raises(ChangeError) as caught:
        changes.add({"id": foreign, "uri": "synthetic://pattern"})
    assert caught.value.status == 409 and "another shard" in caught.value.problems[0]


def test_without_a_config_file_there_is_nowhere_to_keep_a_change(reloads: Reloads) -> None:
    with pytest.raises(ChangeError) as caught:
        StreamChanges(None, ShardSection(), reloads).add({"id": "c", "uri": "synthetic://pattern"})
    assert caught.value.status == 409


def test_a_reload_request_is_answered_by_the_reload_that_served_it() -> None:
    requests = ReloadRequests()
    answers: list[str | None] = []
    waiter = threading.Thread(target=lambda: answers.append(requests.wait(requests.ask(), 30)))
    waiter.start()
    while not (upto := requests.pending()):
        time.sleep(0.01)
    requests.served(upto, "reload failed: x")
    waiter.join(30)
    assert answers == ["reload failed: x"] and requests.pending() == 0
    ticket = requests.ask()
    requests.close("the pipeline is stopping")
    assert requests.wait(ticket, 30) == "the pipeline is stopping"
