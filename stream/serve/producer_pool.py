"""The producer pool: every stream's ring, and the few processes that ingest them.

Streams are packed into producer processes of at most `ingest.streams_per_process`
streams each (stream.ingest.group explains why, and what isolation that costs): a
new stream joins the first process with room that runs the current ingest
settings, else a new process starts. A process that loses its last stream stops.

What happens when something fails (the supervisor reports each stream's new state
with `Endpoints.report`, so /healthz and the events follow):

- a stream's source fails, stalls or ends: its own thread handles it (reconnects,
  or says `ended` / `down`); the pool only notes a stream that finished, so it is
  not started again until its configuration changes;
- a stream's ingest thread crashes (a bug): only that stream restarts, in the same
  process, after its own backoff; a crash loop puts it `down`;
- a process dies or a stream in it hangs inside libav (the process exits with
  EXIT_HUNG after saying which): the process restarts with backoff and every live
  stream of it is `reconnecting`, counted in `process_restarts{process="producer"}`;
  a crash loop of the process puts its streams `down`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from stream.config import IngestSection, StreamSection
from stream.exitcodes import EXIT_HUNG, EXIT_OK, EXIT_PERMANENT
from stream.metrics import PipelineMetrics
from stream.ring import FrameRing
from stream.serve.children import RestartPolicy, exit_text
from stream.serve.producer_process import ExitNews, PoolStream, ProducerProcess

log = logging.getLogger("adafocus.supervisor")


@dataclass(frozen=True)
class Report:
    """A stream's new source state, for the stream states (Endpoints.report)."""

    stream: str
    state: str
    detail: str


class ProducerPool:
    """Every stream's ring and producer, `per_process` streams per process."""

    def __init__(self, events_endpoint: str, policy: RestartPolicy, log_level: int,
                 metrics: PipelineMetrics, per_process: int) -> None:
        self._events_endpoint = events_endpoint
        self._policy, self._log_level = policy, log_level
        self._restarts = metrics.process_restarts
        self.per_process = per_process
        self._processes: list[ProducerProcess] = []
        self._owner: dict[str, ProducerProcess] = {}

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._owner

    def __iter__(self) -> Iterator[PoolStream]:
        for stream_id, process in self._owner.items():
            yield process.streams[stream_id]

    def stream(self, stream_id: str) -> PoolStream:
        return self._owner[stream_id].streams[stream_id]

    def snapshot(self) -> dict[str, PoolStream]:
        """Every stream, for another thread (the stream API): the owner table is
        copied in one step, so the loop changing it meanwhile does no harm."""
        owners = dict(self._owner)
        found = {sid: process.streams.get(sid) for sid, process in owners.items()}
        return {sid: stream for sid, stream in found.items() if stream is not None}

    @property
    def process_count(self) -> int:
        return len(self._processes)

    def handles(self) -> list:
        return [h for process in self._processes for h in process.handles()]

    # ---------------------------------------------------------------- changes

    def add(self, section: StreamSection, ring: FrameRing, ingest: IngestSection) -> None:
        """Start ingesting a new stream into its (already created) ring."""
        stream = PoolStream(section, ring, self._policy.backoff())
        process = next((p for p in self._processes if p.ingest == ingest
                        and len(p.streams) < self.per_process), None)
        if process is None:
            process = ProducerProcess(self._free_slot(), self._events_endpoint, self._policy,
                                      self._log_level)
            self._processes.append(process)
        process.streams[section.id] = stream
        self._owner[section.id] = process
        if process.running:
            process.add(stream)
        elif process.restart_at is None:  # new (one waiting to restart takes it along)
            process.start(ingest)

    def remove(self, stream_id: str) -> FrameRing:
        """Stop ingesting a stream; returns its ring (still linked). A process left
        without streams stops."""
        process = self._owner.pop(stream_id)
        stream = process.streams.pop(stream_id)
        process.send(("remove", stream_id))
        if not process.streams:
            process.stop(time.monotonic() + self._policy.stop_grace_s)
            self._processes.remove(process)
        return stream.ring

    def release(self, stream_id: str) -> None:
        """Remove a stream for good: its ring is closed and unlinked."""
        ring = self.remove(stream_id)
        ring.close()
        ring.unlink()

    def restart(self, section: StreamSection, ingest: IngestSection) -> None:
        """A changed configuration: the stream starts again with a fresh backoff, in
        its ring (its seq keeps increasing), in a process running `ingest`."""
        self.add(section, self.remove(section.id), ingest)

    # ---------------------------------------------------------------- news

    def poll(self, ingest: IngestSection) -> list[Report]:
        """Read every process's news, reap and schedule restarts, start what is due.
        Returns the streams whose state the pool knows better than their producer."""
        now = time.monotonic()
        reports: list[Report] = []
        for process in list(self._processes):
            for message in process.messages():
                reports += self._message(process, message, now)
            news = process.reap()
            if news is not None:
                reports += self._exited(process, news, now)
            if process.restart_at is not None and now >= process.restart_at:
                process.start(process.ingest or ingest)
            for stream in process.live if process.running else ():
                if stream.restart_at is not None and now >= stream.restart_at:
                    stream.restart_at = None
                    process.add(stream)
            if not process.streams and not process.running:
                self._processes.remove(process)
        return reports

    def _message(self, process: ProducerProcess, message: tuple, now: float) -> list[Report]:
        verb, stream_id, *rest = message
        stream = process.streams.get(stream_id)
        if stream is None:  # removed since
            return []
        if verb == "ended":
            stream.finished = True
            how = "source ended" if rest[0] == EXIT_OK else "source failed permanently"
            log.info("stream %s: %s; not restarting", stream_id, how)
        elif verb == "crashed":
            delay = stream.backoff.next_delay(now)
            if delay is None:
                stream.finished = True
                detail = (f"{rest[0]}; {stream.backoff.tries} restarts within "
                          f"{self._policy.window_s:g} s, giving up until the config changes")
                log.error("stream %s: %s", stream_id, detail)
                return [Report(stream_id, "down", detail)]
            stream.restart_at = now + delay
            self._restarts.labels("producer", stream_id).inc()
            detail = f"{rest[0]}; restarting in {delay:.1f} s"
            log.warning("stream %s: %s", stream_id, detail)
            return [Report(stream_id, "reconnecting", detail)]
        return []

    def _exited(self, process: ProducerProcess, news: ExitNews, now: float) -> list[Report]:
        """A process ended: its live streams reconnect after the process's backoff, or
        go down after a crash loop."""
        live = process.live
        if not live and news.code in (EXIT_OK, EXIT_PERMANENT):
            return []
        what = f"producer process (pid {news.pid}) {exit_text(news.code)}"
        if news.code == EXIT_HUNG and news.hung:
            names = ", ".join(sorted(news.hung))
            what = f"producer process (pid {news.pid}) restarted: stream {names} hung"
        delay = process.backoff.next_delay(now, news.ran_s)
        reports = []
        for stream in live:
            own = news.hung.get(stream.id)
            prefix = f"{own}; {what}" if own else what
            if delay is None:
                stream.finished = True
                detail = (f"{prefix}; {process.backoff.tries} restarts within "
                          f"{self._policy.window_s:g} s, giving up until the config changes")
                reports.append(Report(stream.id, "down", detail))
            else:
                self._restarts.labels("producer", stream.id).inc()
                reports.append(Report(stream.id, "reconnecting",
                                      f"{prefix}; restarting in {delay:.1f} s"))
        for report in reports[:1]:
            log_at = log.error if delay is None else log.warning
            log_at("%d stream(s) of producer process %d: %s", len(reports), process.slot,
                   report.detail)
        if delay is not None:
            process.restart_at = now + delay
        return reports

    # ---------------------------------------------------------------- stop

    def terminate(self) -> None:
        """SIGTERM every process without waiting."""
        for process in self._processes:
            process.terminate()

    def stop(self, deadline: float) -> None:
        """Reap every process: SIGKILL for those still there at `deadline`."""
        for process in self._processes:
            process.stop(deadline)

    def release_all(self) -> None:
        """Stop everything and free every ring."""
        self.stop(time.monotonic() + self._policy.stop_grace_s)
        for stream_id in list(self._owner):
            ring = self._owner[stream_id].streams[stream_id].ring
            ring.close()
            ring.unlink()
        self._owner.clear()
        self._processes.clear()

    def _free_slot(self) -> int:
        """The lowest slot no process holds. Metric files are named by slot, so the
        directory stays as large as the most processes ever run at once."""
        taken = {p.slot for p in self._processes}
        return min(set(range(len(taken) + 1)) - taken)
