"""What a reload changes: the difference between the running and the wanted streams.

Kept apart from the supervisor as a pure function: which streams a new config
adds, removes or restarts is the part of a reload worth testing on its own, and
the rule "a stream whose settings did not change keeps running untouched" is
what lets an operator edit one camera without disturbing the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream.config import IngestSection, StreamSection


@dataclass(frozen=True)
class ReloadPlan:
    added: list[StreamSection]
    removed: list[str]
    restarted: list[StreamSection]  # new producer, same ring (its seq keeps increasing)
    rebuilt: list[StreamSection]  # new ring too: the ring's size changed
    unchanged: int


def plan_reload(
    running: Mapping[str, StreamSection],
    wanted: Mapping[str, StreamSection],
    old_ingest: IngestSection,
    new_ingest: IngestSection,
) -> ReloadPlan:
    """The changes that turn the `running` streams into the `wanted` ones. Every
    stream restarts when the ingest settings changed (they are its producer's)."""
    ingest_changed = new_ingest != old_ingest
    changed = [s for sid, s in wanted.items()
               if sid in running and (s != running[sid] or ingest_changed)]
    new_ring = new_ingest.ring_slots != old_ingest.ring_slots
    return ReloadPlan(
        added=[s for sid, s in wanted.items() if sid not in running],
        removed=[sid for sid in running if sid not in wanted],
        restarted=[] if new_ring else changed,
        rebuilt=changed if new_ring else [],
        unchanged=sum(1 for sid in wanted if sid in running) - len(changed),
    )
