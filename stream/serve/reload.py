"""What a reload changes: the difference between the running and the wanted streams.

Kept apart from the supervisor as a pure function: which streams a new config
adds, removes or restarts is the part of a reload worth testing on its own, and
the rule "a stream whose settings did not change keeps running untouched" is
what lets an operator edit one camera without disturbing the others.
`ReloadRequests` lets another thread (the stream API) ask for a reload and
learn its outcome.
"""

from __future__ import annotations

import threading
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


class ReloadRequests:
    """Reloads asked for from other threads (the stream API), and their outcome.

    SIGHUP only sets a flag (a signal handler must not take locks); the API asks
    here and waits until the supervisor's loop has reloaded, so a change it
    answers for is running, or the caller learns why not. One reload serves
    every request made before it began."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._asked = 0
        self._done = 0
        self._outcomes: dict[int, str | None] = {}  # reload's last ticket -> problem or None
        self._closed: str | None = None

    def ask(self) -> int:
        with self._cond:
            self._asked += 1
            return self._asked

    def pending(self) -> int:
        """The newest ticket not yet served (0: none). The loop reloads, then
        calls `served` with it."""
        with self._cond:
            return self._asked if self._asked > self._done else 0

    def served(self, upto: int, problem: str | None) -> None:
        with self._cond:
            self._done = upto
            self._outcomes[upto] = problem
            for old in [t for t in self._outcomes if t < upto - 64]:
                del self._outcomes[old]
            self._cond.notify_all()

    def close(self, why: str) -> None:
        """No more reloads (the pipeline stops): every waiter hears `why`."""
        with self._cond:
            self._closed = why
            self._cond.notify_all()

    def wait(self, ticket: int, timeout_s: float) -> str | None:
        """The problem of the reload that served `ticket`, None when it applied."""
        with self._cond:
            served = self._cond.wait_for(lambda: self._done >= ticket or self._closed,
                                         timeout_s)
            if self._done >= ticket:
                serving = min((t for t in self._outcomes if t >= ticket), default=self._done)
                return self._outcomes.get(serving)
            return self._closed if served else f"not applied within {timeout_s:g} s"
