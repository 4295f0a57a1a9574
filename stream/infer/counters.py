"""One stream's worker-side metrics, with the label lookups done once and the
counters added up between flushes.

Why: every metric update in client_python's multiprocess mode looks the child up
by its labels (a lock and a dict) and writes the value to a memory-mapped file
(another lock). Per frame that was ten such calls, a visible share of the
worker's CPU once the networks run on a few percent of the frames. Here the
per-frame histograms' children are looked up once, and the four per-frame
counters (processed, skipped, GFLOPs, full-frame GFLOPs) are summed in plain
Python numbers and written when the worker flushes (every half second), which
/metrics, scraped every few seconds, cannot tell apart. Histograms are observed
per frame: the client has no way to add several observations at once.
"""

from __future__ import annotations

from stream.metrics import PipelineMetrics


class StreamCounters:
    """The worker's metrics of one stream, and the counts not written yet."""

    __slots__ = ("_metrics", "_id", "wait", "latency", "stale", "frames", "skipped",
                 "gflops", "gflops_full", "backpressure")

    def __init__(self, metrics: PipelineMetrics, stream_id: str) -> None:
        self._metrics, self._id = metrics, stream_id
        self.wait = metrics.wait.labels(stream_id)
        self.latency = metrics.latency.labels(stream_id)
        # Counters that may never move (skipping off, a worker that keeps up) exist at
        # 0 from the start, so dashboards read 0 rather than "no data". The others
        # appear with the first flush, so ratios of them never start as 0/0.
        self.stale = metrics.frames_dropped.labels(stream_id, "stale")
        metrics.frames_skipped.labels(stream_id)
        self.frames = self.skipped = self.backpressure = 0
        self.gflops = self.gflops_full = 0.0

    def flush(self) -> None:
        """Write what was added up since the last flush."""
        m, sid = self._metrics, self._id
        if self.backpressure:
            m.frames_dropped.labels(sid, "backpressure").inc(self.backpressure)
            self.backpressure = 0
        if not self.frames:
            return
        m.frames_processed.labels(sid).inc(self.frames)
        if self.skipped:
            m.frames_skipped.labels(sid).inc(self.skipped)
        m.gflops.labels(sid).inc(self.gflops)
        m.gflops_full.labels(sid).inc(self.gflops_full)
        self.frames = self.skipped = 0
        self.gflops = self.gflops_full = 0.0
