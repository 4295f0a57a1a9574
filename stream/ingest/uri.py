"""Source URIs: what kind of source a string names, and how to print it safely.

`parse_source` turns a configured URI (plus the stream's options) into a
`SourceSpec` the producer can open, and rejects anything malformed up front
with a message that names the problem, so a typo in the config fails at start
instead of as a reconnect loop. `mask_uri` / `redact` keep credentials out of
every log line, event and error: camera URIs routinely carry
`user:password@` and `?token=`.

Nothing here touches the network or PyAV; it is cheap enough for config
validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_PARAMS = re.compile(r"pass|pwd|token|auth|key|secret|sig|credential", re.IGNORECASE)
NETWORK_SCHEMES = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}
V4L2_DEVICE = re.compile(r"/dev/video\d+")
TRANSPORTS = ("tcp", "udp")
SCENES = ("pattern", "digits")
SPLITS = ("train", "val", "test")
STREAM_OPTIONS = ("transport", "realtime", "av_options")
MAX_FPS = 240.0


class SourceError(Exception):
    """A source that cannot be used as configured (bad URI, file that is not a
    video, 404, wrong password...). Permanent: retrying will not help. The
    message never contains a password or token."""


class SourceUnavailable(SourceError):
    """A source that failed now but may work later (refused, reset, DNS, EOF of a
    live stream): the producer reconnects with backoff."""


class SourceTimeout(SourceUnavailable):
    """No answer or no frame within the configured time: the stream is stalled."""


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source. `url` is what PyAV opens (credentials included; never
    print it), `masked` is the printable form."""

    kind: str  # "rtsp" | "http" | "file" | "v4l2" | "synthetic"
    url: str = field(repr=False)
    masked: str
    host: str | None = None
    port: int | None = None
    av_format: str | None = None
    av_options: dict[str, str] = field(default_factory=dict)
    realtime: bool = True  # files: pace at the native frame rate
    live: bool = True  # end of stream means "reconnect", not "ended"
    scene: str | None = None  # synthetic only
    scene_params: dict[str, Any] = field(default_factory=dict)


def _split_userinfo(uri: str) -> tuple[str, str | None, str | None, str] | None:
    """(scheme://, user, password or None, the rest after '@'), or None without user
    info. Done by hand because urlsplit misreads an unencoded '/', '?' or '#' in a
    password (`rtsp://viewer:Pa/ss@host/cam`) as the start of the path and would
    leave the password in clear: the user info ends at the LAST '@' when the part
    before it reads as `user:password`."""
    scheme, sep, rest = uri.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return None
    userinfo = rest[:at]
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    if ends and min(ends) < at and ":" not in userinfo:
        return None  # an '@' in the path or query of a URI without credentials
    user, colon, password = userinfo.partition(":")
    return scheme + sep, user, password if colon else None, rest[at + 1:]


def mask_uri(uri: str) -> str:
    """`uri` with the password of its user info and the values of secret-looking
    query parameters (any key containing pass, pwd, token, key, secret, auth, sig
    or credential) replaced by ***. Anything that is not a URL comes back as is.
    Where it cannot tell user info from an '@' in the path, it masks more."""
    parts = _split_userinfo(uri)
    if parts is not None:
        head, user, password, rest = parts
        uri = f"{head}{user}:{MASK}@{rest}" if password is not None else uri
    base, question, query = uri.partition("?")
    if not question:
        return uri
    query, hash_, fragment = query.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(SECRET_PARAMS.search(k) for k, _ in pairs):
        query = urlencode([(k, MASK if SECRET_PARAMS.search(k) else v) for k, v in pairs],
                          safe="*")
    return f"{base}?{query}{hash_}{fragment}"


def redact(text: str, uri: str) -> str:
    """`text` (an error message from PyAV, say) with the raw URI and its secrets
    replaced, so it can go into a log line or event."""
    if not uri:
        return text
    text = text.replace(uri, mask_uri(uri))
    for secret in _secrets(uri):
        text = text.replace(secret, MASK)
    return text


def _secrets(uri: str) -> list[str]:
    parts = _split_userinfo(uri)
    found = [parts[2]] if parts is not None and parts[2] else []
    query = uri.partition("?")[2].partition("#")[0]
    found += [v for k, v in parse_qsl(query) if SECRET_PARAMS.search(k) and v]
    return [s for s in found if len(s) >= 3]  # a 1-2 char "secret" would mangle text


def parse_source(uri: str, options: Mapping[str, Any] | None = None) -> SourceSpec:
    """Classify and validate `uri`; raise SourceError naming the problem.

    `options` are the stream's settings: `transport` ("tcp" default, or "udp")
    for RTSP (also `?transport=udp` in the URI), `realtime` (files: True plays at
    the native frame rate, False as fast as decoding goes) and `av_options`
    (extra demuxer options, e.g. {"video_size": "640x480"} for V4L2)."""
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError("empty source URI")
    options = dict(options or {})
    unknown = sorted(set(options) - set(STREAM_OPTIONS))
    if unknown:
        raise SourceError(f"unknown stream option(s) {unknown}; known: {list(STREAM_OPTIONS)}")
    extra = options.get("av_options") or {}
    if not isinstance(extra, Mapping):
        raise SourceError("av_options must be a mapping of demuxer option -> value")
    av_options = {str(k): str(v) for k, v in extra.items()}
    realtime = options.get("realtime", True)
    if not isinstance(realtime, bool):
        raise SourceError(f"realtime must be true or false, got {realtime!r}")

    uri = uri.strip()
    if V4L2_DEVICE.fullmatch(uri):
        return SourceSpec("v4l2", uri, uri, av_format="v4l2", av_options=av_options)
    scheme, sep, _ = uri.partition("://")
    if not sep:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) and not uri.startswith(("./", "/")):
            raise SourceError(f"malformed source URI {mask_uri(uri)!r}: expected SCHEME://...")
        return _file(uri, uri, realtime, av_options)
    scheme = scheme.lower()
    if scheme == "file":
        path = urlsplit(uri).path
        if not path:
            raise SourceError(f"file URI {mask_uri(uri)!r} has no path")
        return _file(path, uri, realtime, av_options)
    if scheme == "synthetic":
        return _synthetic(uri)
    if scheme in NETWORK_SCHEMES:
        return _network(uri, NETWORK_SCHEMES[scheme], options.get("transport"), av_options)
    raise SourceError(
        f"unsupported source scheme {scheme!r} in {mask_uri(uri)!r}; expected rtsp://, rtsps://, "
        "http://, https://, file://, synthetic://, /dev/videoN or a file path"
    )


def _file(path: str, uri: str, realtime: bool, av_options: dict[str, str]) -> SourceSpec:
    return SourceSpec(
        "file", path, mask_uri(uri), av_options=av_options, realtime=realtime, live=False
    )


def _network(uri: str, kind: str, transport: Any, av_options: dict[str, str]) -> SourceSpec:
    masked = mask_uri(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise SourceError(f"malformed source URI {masked!r}: {redact(str(exc), uri)}") from None
    if not parts.hostname:
        raise SourceError(f"source URI {masked!r} has no host")
    av_options = dict(av_options)
    url = uri
    if kind == "rtsp":
        query = parse_qsl(parts.query, keep_blank_values=True)
        in_uri = [v for k, v in query if k == "transport"]
        if in_uri:  # ours, not the camera's: take it out of the URL the camera sees
            transport = in_uri[-1]
            rest = urlencode([(k, v) for k, v in query if k != "transport"])
            url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        transport = transport or "tcp"
        if transport not in TRANSPORTS:
            raise SourceError(f"RTSP transport must be one of {TRANSPORTS}, got {transport!r}")
        av_options.setdefault("rtsp_transport", transport)
    elif transport not in (None, "tcp"):
        raise SourceError(f"transport={transport!r} only applies to rtsp:// sources")
    return SourceSpec(kind, url, masked, host=parts.hostname, port=port, av_options=av_options)


def _synthetic(uri: str) -> SourceSpec:
    masked = mask_uri(uri)
    parts = urlsplit(uri)
    scene = parts.netloc or parts.path.strip("/")
    if scene not in SCENES:
        raise SourceError(f"unknown synthetic scene {scene!r} in {masked!r}; known: {SCENES}")
    params: dict[str, Any] = {"fps": 25.0, "seed": 0}
    if scene == "digits":
        params["split"] = "test"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in params:
            raise SourceError(
                f"unknown parameter {key!r} for synthetic://{scene}; known: {sorted(params)}"
            )
        params[key] = _scene_param(key, value, masked)
    return SourceSpec("synthetic", uri, masked, scene=scene, scene_params=params)


def _scene_param(key: str, value: str, masked: str) -> Any:
    try:
        if key == "fps":
            fps = float(value)
            if not 0 < fps <= MAX_FPS:
                raise ValueError(f"must be in (0, {MAX_FPS:g}]")
            return fps
        if key == "seed":
            seed = int(value)
            if seed < 0:
                raise ValueError("must be >= 0")
            return seed
        if value not in SPLITS:
            raise ValueError(f"must be one of {SPLITS}")
        return value
    except ValueError as exc:
        raise SourceError(f"bad {key}={value!r} in {masked!r}: {exc}") from None
