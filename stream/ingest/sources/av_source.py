"""Sources PyAV decodes: RTSP(S), HTTP(S) (HLS, MJPEG...), files and V4L2.

Per frame: demux -> decode -> fit into the ring's (height, width) RGB with
`adafocus.FrameResizer`, the very resize training and evaluation use (aspect
kept, letterboxed when the camera's differs from the model's; swscale on the
small YUV planes' way to RGB, not on a full-size RGB copy) -> yield a view the
ring write copies once.

Errors are mapped to what the producer does about them: SourceError
(permanent: wrong path, wrong password, not a video), SourceUnavailable
(retry: refused, reset, DNS) and SourceTimeout (stalled). Messages come from
the error's own text, never from `str(exc)`, which carries the URL (and its
password).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import av

from adafocus import FrameResizer
from stream.ingest.sources import DecodedFrame
from stream.ingest.uri import SourceError, SourceSpec, SourceTimeout, SourceUnavailable, redact

EARLY_END_SLACK_S = 0.5  # a file ending this much before its stated duration was cut short
MAX_LAG_S = 1.0  # paced playback this far behind the clock resynchronises instead of racing
TIMEOUT_MARGIN = 0.95  # a call that failed after this share of its timeout timed out


class AVSource:
    """One opened PyAV container; `frames()` plays it once."""

    def __init__(
        self,
        spec: SourceSpec,
        height: int,
        width: int,
        *,
        open_timeout_s: float,
        stall_timeout_s: float,
        stop: threading.Event,
        on_decode_error: Callable[[], None],
        decode_threads: int,
    ):
        self._spec = spec
        self._resize = FrameResizer(height, width)
        self._stall_s = stall_timeout_s
        self._stop = stop
        self._on_decode_error = on_decode_error
        self.end_note = ""
        if spec.host:
            _resolve(spec)
        started = time.monotonic()
        try:
            self._container = av.open(
                spec.url,
                format=spec.av_format,
                options=spec.av_options,
                timeout=(open_timeout_s, stall_timeout_s),
            )
        except Exception as exc:  # PyAV raises FFmpegError subclasses and OSErrors
            timed_out = time.monotonic() - started >= open_timeout_s * TIMEOUT_MARGIN
            error = _classify(exc, spec, timed_out, f"no answer within {open_timeout_s:g} s")
            if isinstance(error, SourceTimeout):
                # It never came up, so it did not stall: the open timed out.
                error = SourceUnavailable(
                    f"{spec.masked}: open timed out (no answer within {open_timeout_s:g} s)"
                )
            raise error from None
        streams = self._container.streams
        if not streams.video:
            kinds = sorted({s.type for s in streams}) or ["nothing"]
            self._container.close()
            raise SourceError(f"{spec.masked}: no video stream (contains {', '.join(kinds)})")
        self._stream = streams.video[0]
        ctx = self._stream.codec_context
        ctx.thread_count = decode_threads  # before the first decode opens the codec
        self.description = f"{ctx.name} {self._resize.describe((ctx.height, ctx.width))}"

    def frames(self) -> Iterator[DecodedFrame]:
        stream, stop, on_error = self._stream, self._stop, self._on_decode_error
        decode = stream.codec_context.decode
        resize = self._resize
        pace = self._spec.realtime and not self._spec.live
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        clock: float | None = None  # wall time of pts 0 when pacing
        count = 0
        last_pts: float | None = None
        last_frame = last_packet = time.monotonic()
        try:
            for packet in self._container.demux(stream):
                last_packet = time.monotonic()
                if stop.is_set():
                    return
                if packet.is_corrupt:
                    on_error()
                    continue
                try:
                    decoded = decode(packet)
                except av.FFmpegError:
                    on_error()
                    decoded = ()
                for frame in decoded:
                    if frame.is_corrupt:
                        on_error()
                        continue
                    image = resize(frame)
                    pts = frame.time
                    if pace:
                        at = pts if pts is not None else count / rate
                        now = time.monotonic()
                        if clock is None or clock + at < now - MAX_LAG_S:
                            clock = now - at
                        if clock + at > now and stop.wait(clock + at - now):
                            return
                    count += 1
                    last_pts = pts if pts is not None else last_pts
                    last_frame = time.monotonic()
                    yield DecodedFrame(image, pts)
                if time.monotonic() - last_frame > self._stall_s:
                    raise SourceTimeout(
                        f"{self._spec.masked}: no decodable frame for {self._stall_s:g} s"
                    )
        except (av.FFmpegError, OSError) as exc:
            timed_out = time.monotonic() - last_packet >= self._stall_s * TIMEOUT_MARGIN
            error = _classify(exc, self._spec, timed_out, f"no data for {self._stall_s:g} s")
            if self._spec.live or isinstance(error, SourceTimeout):
                raise error from None
            on_error()  # a file that breaks off mid-packet: that packet is lost, the file ended
        self.end_note = self._early_end(last_pts)

    def _early_end(self, last_pts: float | None) -> str:
        """For files: say so when playback stopped well before the stated duration."""
        stream = self._stream
        if self._spec.live or stream.duration is None or stream.time_base is None:
            return ""
        duration = float(stream.duration * stream.time_base)
        reached = last_pts or 0.0
        if reached + EARLY_END_SLACK_S < duration:
            return f"ended at {reached:.2f} s of {duration:.2f} s (truncated or damaged file)"
        return ""

    def close(self) -> None:
        self._container.close()


def _resolve(spec: SourceSpec) -> None:
    """Look the host up first: ffmpeg reports a failed lookup as a bare I/O error."""
    try:
        socket.getaddrinfo(spec.host, spec.port or 0, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SourceUnavailable(f"cannot resolve host {spec.host!r} ({exc.strerror})") from None


def _classify(
    exc: BaseException, spec: SourceSpec, timed_out: bool, timeout_text: str
) -> SourceError:
    """Map a PyAV/OS error to what the producer should do, with a clear message.

    `timed_out`: the call failed only after running into its timeout. PyAV's
    timeout interrupts libav, but libav does not always report that as an
    interrupt (the RTSP client, cut off mid-reply, says "invalid data"), so
    the elapsed time decides."""
    where = spec.masked
    reason = getattr(exc, "strerror", None) or redact(str(exc), spec.url)
    network = spec.kind in ("rtsp", "http")
    peer = f"{spec.host}:{spec.port}" if spec.port else f"{spec.host}"
    if timed_out or isinstance(exc, (av.ExitError, TimeoutError)):
        return SourceTimeout(f"{where}: {timeout_text}")
    if isinstance(exc, av.HTTPNotFoundError):
        return SourceError(f"{where}: not found (404); check the path")
    if isinstance(exc, av.HTTPUnauthorizedError):
        return SourceError(f"{where}: unauthorized (401); check the user name and password")
    if isinstance(exc, av.HTTPForbiddenError):
        return SourceError(f"{where}: forbidden (403)")
    if isinstance(exc, av.HTTPClientError):
        return SourceError(f"{where}: request rejected by the server ({reason})")
    if isinstance(exc, ConnectionRefusedError):
        return SourceUnavailable(f"connection refused by {peer} ({where})")
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return SourceUnavailable(f"connection to {peer} lost ({reason}; {where})")
    if isinstance(exc, IsADirectoryError):
        return SourceError(f"{where} is a directory, not a video")
    if isinstance(exc, PermissionError):
        return SourceError(f"{where}: permission denied")
    if isinstance(exc, FileNotFoundError):
        if spec.kind == "file":
            return SourceError(f"no such file: {where}")
        return SourceUnavailable(f"no such device or resource: {where}")
    if isinstance(exc, av.InvalidDataError) and spec.kind == "file":
        return SourceError(f"{where} is not a video file ffmpeg can read ({reason})")
    if network or spec.kind == "v4l2":
        return SourceUnavailable(f"{where}: {reason}")
    return SourceError(f"{where}: {reason}")
