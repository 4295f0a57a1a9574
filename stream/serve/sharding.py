"""Which worker serves which stream, when streams are spread over several workers.

Every worker reads the same stream list and keeps only the streams it owns, so
no coordinator is needed: ownership is a pure function of (stream id, shard
index, shard count). It uses rendezvous (highest-random-weight) hashing: each
stream goes to the shard with the highest hash of (shard, stream id). Growing
from N to N+1 shards then moves only the streams the new shard wins, about
1/(N+1) of them, instead of reshuffling everything as `hash % N` would.

The hash is blake2b, never Python's `hash()`, which is salted per process: two
workers must agree on the assignment across processes, hosts and versions.

In Kubernetes each worker is a StatefulSet pod named `<name>-<ordinal>`; the
ordinal is its shard index and `ADAFOCUS_SHARD_COUNT` (kept equal to the replica
count by the manifests) is the shard count.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Mapping
from typing import NamedTuple

INDEX_ENV = "ADAFOCUS_SHARD_INDEX"
COUNT_ENV = "ADAFOCUS_SHARD_COUNT"
MAX_SHARDS = 4096

_ORDINAL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?-(\d+)$")


class ShardError(ValueError):
    """A shard specification that cannot be used (bad syntax, index out of range)."""


class Shard(NamedTuple):
    """This worker's place among `count` workers (index is 0-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _check(index: int, count: int) -> Shard:
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"shard count must be between 1 and {MAX_SHARDS}, got {count}")
    if not 0 <= index < count:
        raise ShardError(f"shard index must be between 0 and {count - 1}, got {index}")
    return Shard(index, count)


def _weight(shard: int, stream_id: str) -> int:
    digest = hashlib.blake2b(
        stream_id.encode("utf-8"), digest_size=8, key=shard.to_bytes(4, "big")
    ).digest()
    return int.from_bytes(digest, "big")


def shard_of(stream_id: str, count: int) -> int:
    """The shard (0..count-1) that serves `stream_id` among `count` shards."""
    _check(0, count)
    return max(range(count), key=lambda shard: _weight(shard, stream_id))


def owns(stream_id: str, index: int, count: int) -> bool:
    """True when shard `index` of `count` serves `stream_id`."""
    _check(index, count)
    return shard_of(stream_id, count) == index


def parse_shard(text: str) -> Shard:
    """Parse the `--shard I/N` command-line form, e.g. "0/2"."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ShardError(f"shard must look like INDEX/COUNT (e.g. 0/2), got {text!r}")
    return _check(int(match.group(1)), int(match.group(2)))


def _int_env(environ: Mapping[str, str], name: str) -> int:
    value = environ[name].strip()
    if not value.isdigit():
        raise ShardError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def shard_from_env(
    environ: Mapping[str, str] | None = None, hostname: str | None = None
) -> Shard | None:
    """This worker's shard as the environment says, or None when it says nothing.

    The count comes from `ADAFOCUS_SHARD_COUNT`; without it the environment does
    not shard (a plain host named like `web-1` must not be taken for a pod). The
    index comes from `ADAFOCUS_SHARD_INDEX`, else from the StatefulSet ordinal at
    the end of the hostname (`adafocus-worker-3` -> 3).
    """
    environ = os.environ if environ is None else environ
    if not environ.get(COUNT_ENV, "").strip():
        return None
    count = _int_env(environ, COUNT_ENV)
    if environ.get(INDEX_ENV, "").strip():
        return _check(_int_env(environ, INDEX_ENV), count)
    name = hostname if hostname is not None else environ.get("HOSTNAME") or socket.gethostname()
    match = _ORDINAL.match(name.split(".")[0])
    if match is None:
        raise ShardError(
            f"{COUNT_ENV} is set but neither {INDEX_ENV} nor a StatefulSet hostname "
            f"(name-ORDINAL) gives the shard index; hostname is {name!r}"
        )
    return _check(int(match.group(2)), count)
