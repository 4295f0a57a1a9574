"""Stream-to-shard assignment: complete, stable, and minimal movement on scale-out."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream.serve.sharding import Shard, ShardError, owns, parse_shard, shard_from_env, shard_of

STREAM_IDS = [f"cam-{i:04d}" for i in range(1000)]


@pytest.mark.parametrize("count", range(1, 17))
def test_every_stream_is_owned_by_exactly_one_shard(count: int) -> None:
    for stream_id in STREAM_IDS[:200]:
        owners = [index for index in range(count) if owns(stream_id, index, count)]
        assert owners == [shard_of(stream_id, count)]


@pytest.mark.parametrize("count", range(1, 16))
def test_adding_a_shard_moves_only_streams_to_the_new_shard(count: int) -> None:
    before = {s: shard_of(s, count) for s in STREAM_IDS}
    after = {s: shard_of(s, count + 1) for s in STREAM_IDS}
    moved = [s for s in STREAM_IDS if before[s] != after[s]]
    assert len(moved) <= 2 * len(STREAM_IDS) / (count + 1)
    assert all(after[s] == count for s in moved)


def test_streams_spread_over_all_shards() -> None:
    counts = [0] * 8
    for stream_id in STREAM_IDS:
        counts[shard_of(stream_id, 8)] += 1
    assert min(counts) > 1000 / 8 / 2


def test_assignment_is_the_same_in_another_process() -> None:
    """Python's hash() is salted per process; the assignment must not be."""
    code = (
        "from stream.serve.sharding import shard_of;"
        "print(','.join(str(shard_of(f'cam-{i:04d}', 5)) for i in range(100)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert out == ",".join(str(shard_of(f"cam-{i:04d}", 5)) for i in range(100))


def test_parse_shard_accepts_index_slash_count() -> None:
    assert parse_shard("1/2") == Shard(1, 2)
    assert str(parse_shard(" 0 / 3 ")) == "0/3"


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/2", "0/0", "1/2/3"])
def test_parse_shard_rejects_bad_specs_with_a_clear_message(text: str) -> None:
    with pytest.raises(ShardError, match="shard"):
        parse_shard(text)


def test_shard_from_env_uses_statefulset_ordinal_of_hostname() -> None:
    env = {"ADAFOCUS_SHARD_COUNT": "4"}
    assert shard_from_env(env, hostname="adafocus-worker-3") == Shard(3, 4)
    assert shard_from_env(env, hostname="adafocus-worker-0.adafocus-worker.ns.svc") == Shard(0, 4)


def test_shard_from_env_prefers_explicit_index() -> None:
    env = {"ADAFOCUS_SHARD_COUNT": "4", "ADAFOCUS_SHARD_INDEX": "2"}
    assert shard_from_env(env, hostname="adafocus-worker-3") == Shard(2, 4)


def test_shard_from_env_is_none_without_a_count() -> None:
    assert shard_from_env({}, hostname="web-1") is None


@pytest.mark.parametrize(
    ("env", "hostname", "message"),
    [
        ({"ADAFOCUS_SHARD_COUNT": "4"}, "laptop", "hostname"),
        ({"ADAFOCUS_SHARD_COUNT": "2"}, "adafocus-worker-2", "between 0 and 1"),
        ({"ADAFOCUS_SHARD_COUNT": "two"}, "adafocus-worker-0", "ADAFOCUS_SHARD_COUNT"),
    ],
)
def test_shard_from_env_names_the_problem(env: dict, hostname: str, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        shard_from_env(env, hostname=hostname)
