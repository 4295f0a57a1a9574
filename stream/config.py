"""The pipeline's one YAML configuration file, read once at start and validated.

Why validate everything up front: a typo in a key or a camera URI found at start
costs a second; found at 3 a.m. as a stream that silently never came up it costs
a night. So every error names the key path and the problem
("streams[1].uri: ...", "model.device: ..."), unknown keys are errors, and the
result is a tree of frozen dataclasses nobody can change behind the supervisor's
back. URIs may carry credentials: they are accepted, but every message and every
`repr` shows them through `mask_uri`.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from stream.ingest.uri import TRANSPORTS, SourceError, mask_uri, parse_source

STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
ZMQ_ENDPOINT = re.compile(
    r"(tcp://(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d+|\*)|ipc://\S+|inproc://\S+)"
)
SKIP_MODES = ("off", "confidence")  # a learned skip head is not built yet
BUILTIN_PREFIX = "builtin:"


class ConfigError(ValueError):
    """A configuration problem; the message starts with the key path."""


@dataclass(frozen=True)
class ModelSection:
    checkpoint: str = "builtin:digits"
    device: str = "auto"
    skip_mode: str = "confidence"
    budget: float = 0.3
    max_batch: int = 32


@dataclass(frozen=True)
class StreamSection:
    id: str
    uri: str = field(repr=False)
    transport: str = "tcp"
    realtime: bool = True
    lossless: bool = False

    def __repr__(self) -> str:
        # The generated repr would print the URI, password included.
        return (
            f"StreamSection(id={self.id!r}, uri={mask_uri(self.uri)!r}, "
            f"transport={self.transport!r}, realtime={self.realtime}, lossless={self.lossless})"
        )


@dataclass(frozen=True)
class IngestSection:
    ring_slots: int = 8
    stall_timeout_s: float = 5.0
    open_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.25


@dataclass(frozen=True)
class WorkerSection:
    hang_timeout_s: float = 15.0
    tick_idle_s: float = 0.005
    threads: int = 1


@dataclass(frozen=True)
class CurveSection:
    server_secret_key: Path
    authorized_clients: Path


@dataclass(frozen=True)
class PublishSection:
    bind: str = "tcp://127.0.0.1:5556"
    sndhwm: int = 1000
    curve: CurveSection | None = None


@dataclass(frozen=True)
class MetricsSection:
    bind: str = "127.0.0.1:9108"

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


@dataclass(frozen=True)
class ShardSection:
    index: int = 0
    count: int = 1


@dataclass(frozen=True)
class PipelineConfig:
    model: ModelSection
    streams: tuple[StreamSection, ...]
    ingest: IngestSection = IngestSection()
    worker: WorkerSection = WorkerSection()
    publish: PublishSection = PublishSection()
    metrics: MetricsSection = MetricsSection()
    shard: ShardSection = ShardSection()


# ----------------------------------------------------------------------------- reading

_REQUIRED = object()
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Mapping:
    """One mapping of the file. Unknown keys are reported before anything else, so
    a misspelt key is named as such instead of surfacing as its default's problem."""

    def __init__(self, value: Any, path: str, keys: tuple[str, ...]) -> None:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {_type_name(value)}")
        self._data = dict(value)
        self._path = path
        for name in self._data:
            if name not in keys:
                raise ConfigError(
                    f"{self.key(str(name))}: unknown key (allowed: {', '.join(keys)})"
                )

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def take(self, name: str, kind: Any, default: Any = _REQUIRED) -> Any:
        if name not in self._data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.key(name)}: required key is missing")
            return default
        value = self._data[name]
        if kind is Any:
            return value
        # bool is an int in Python; a YAML `yes` where a number belongs is a mistake.
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            # Values are not echoed: a mistyped URI could still hold a password.
            raise ConfigError(
                f"{self.key(name)}: expected {_TYPE_NAMES[kind]}, got {_type_name(value)}"
            )
        return value


def _names(section: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(section))


def _check(path: str, ok: bool, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: {problem}")


def _number(
    m: _Mapping, name: str, default: float, kind: type = float, *, low: float, strict: bool = False
) -> Any:
    value = m.take(name, kind, default)
    bound_ok = value > low if strict else value >= low
    _check(m.key(name), bound_ok, f"must be {'>' if strict else '>='} {low}, got {value}")
    return value


# ----------------------------------------------------------------------------- sections


def _builtin_checkpoint_dir() -> Path:
    # find_spec locates the package without importing it (which would load torch).
    spec = importlib.util.find_spec("adafocus")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "checkpoints"


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def _checkpoint(key: str, spec: str, base_dir: Path) -> str:
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        directory = _builtin_checkpoint_dir()
        if not (directory / f"{name}.pt").is_file():
            available = sorted(p.stem for p in directory.glob("*.pt")) if directory.is_dir() else []
            raise ConfigError(
                f"{key}: no builtin checkpoint {name!r} "
                f"(available: {', '.join(available) or 'none'})"
            )
        return spec
    path = _resolve(spec, base_dir)
    _check(key, path.is_file(), f"no such file {path}")
    return str(path)


def _device(key: str, device: str) -> str:
    _check(
        key,
        DEVICE.fullmatch(device) is not None,
        f"expected auto, cpu, cuda or cuda:N, got {device!r}",
    )
    if device.startswith("cuda"):
        import torch  # only a config asking for CUDA pays for loading torch

        _check(
            key,
            torch.cuda.is_available(),
            f"{device!r} asked but CUDA is not available on this machine",
        )
        index = int(device.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        _check(key, index < count, f"{device!r} asked but this machine has {count} CUDA device(s)")
    return device


def _model(value: Any, base_dir: Path) -> ModelSection:
    m = _Mapping(value, "model", ("checkpoint", "device", "skip", "max_batch"))
    d = ModelSection()
    checkpoint = _checkpoint(m.key("checkpoint"), m.take("checkpoint", str, d.checkpoint), base_dir)
    device = _device(m.key("device"), m.take("device", str, d.device))
    skip = _Mapping(m.take("skip", Any, None), m.key("skip"), ("mode", "budget"))
    # YAML 1.1 reads a bare `off` as false; that is what the user meant by it.
    mode = skip.take("mode", Any, d.skip_mode)
    mode = "off" if mode is False else mode
    _check(
        skip.key("mode"),
        mode in SKIP_MODES,
        f"expected one of {', '.join(SKIP_MODES)}, got {mode!r}",
    )
    budget = skip.take("budget", float, d.budget)
    _check(skip.key("budget"), 0.0 <= budget <= 1.0, f"must be within 0..1, got {budget}")
    max_batch = _number(m, "max_batch", d.max_batch, int, low=1)
    return ModelSection(checkpoint, device, mode, budget, max_batch)


def _stream(value: Any, path: str) -> StreamSection:
    m = _Mapping(value, path, ("id", "uri", "transport", "realtime", "lossless"))
    stream_id = m.take("id", str)
    _check(
        m.key("id"),
        STREAM_ID.fullmatch(stream_id) is not None,
        f"{stream_id!r} is not 1-64 characters of A-Z a-z 0-9 _ . -",
    )
    uri = m.take("uri", str)
    try:
        source = parse_source(uri)
    except SourceError as exc:  # its message masks credentials already
        raise ConfigError(f"{m.key('uri')}: {exc}") from None
    transport = m.take("transport", str, "tcp")
    _check(
        m.key("transport"),
        transport in TRANSPORTS,
        f"expected one of {', '.join(TRANSPORTS)}, got {transport!r}",
    )
    _check(
        m.key("transport"),
        transport == "tcp" or source.kind == "rtsp",
        f"{transport!r} only applies to rtsp:// sources",
    )
    realtime = m.take("realtime", bool, True)
    lossless = m.take("lossless", bool, False)
    return StreamSection(stream_id, uri, transport, realtime, lossless)


def _streams(value: Any) -> tuple[StreamSection, ...]:
    _check("streams", isinstance(value, list), f"expected a list, got {_type_name(value)}")
    _check("streams", len(value) > 0, "at least one stream is required")
    streams = tuple(_stream(item, f"streams[{i}]") for i, item in enumerate(value))
    first: dict[str, int] = {}
    for i, s in enumerate(streams):
        _check(
            f"streams[{i}].id",
            s.id not in first,
            f"duplicate stream id {s.id!r} (also streams[{first.get(s.id)}])",
        )
        first[s.id] = i
    return streams


def _ingest(value: Any) -> IngestSection:
    m = _Mapping(value, "ingest", _names(IngestSection))
    d = IngestSection()
    section = IngestSection(
        ring_slots=_number(m, "ring_slots", d.ring_slots, int, low=2),
        stall_timeout_s=_number(m, "stall_timeout_s", d.stall_timeout_s, low=0, strict=True),
        open_timeout_s=_number(m, "open_timeout_s", d.open_timeout_s, low=0, strict=True),
        backoff_initial_s=_number(m, "backoff_initial_s", d.backoff_initial_s, low=0, strict=True),
        backoff_max_s=_number(m, "backoff_max_s", d.backoff_max_s, low=0, strict=True),
        backoff_jitter=_number(m, "backoff_jitter", d.backoff_jitter, low=0),
    )
    _check(
        "ingest.backoff_max_s",
        section.backoff_max_s >= section.backoff_initial_s,
        "must be >= ingest.backoff_initial_s",
    )
    _check("ingest.backoff_jitter", section.backoff_jitter <= 1.0, "must be within 0..1")
    return section


def _worker(value: Any) -> WorkerSection:
    m = _Mapping(value, "worker", _names(WorkerSection))
    d = WorkerSection()
    section = WorkerSection(
        hang_timeout_s=_number(m, "hang_timeout_s", d.hang_timeout_s, low=0, strict=True),
        tick_idle_s=_number(m, "tick_idle_s", d.tick_idle_s, low=0),
        threads=_number(m, "threads", d.threads, int, low=0, strict=True),
    )
    return section


def _existing(
    m: _Mapping, name: str, is_kind: Callable[[Path], bool], what: str, base_dir: Path
) -> Path:
    path = _resolve(m.take(name, str), base_dir)
    _check(m.key(name), is_kind(path), f"no such {what} {path}")
    return path


def _publish(value: Any, base_dir: Path) -> PublishSection:
    m = _Mapping(value, "publish", ("bind", "sndhwm", "curve"))
    d = PublishSection()
    bind = m.take("bind", str, d.bind)
    _check(
        m.key("bind"),
        ZMQ_ENDPOINT.fullmatch(bind) is not None,
        f"expected tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {bind!r}",
    )
    sndhwm = _number(m, "sndhwm", d.sndhwm, int, low=1)
    curve = None
    raw_curve = m.take("curve", Any, None)
    if raw_curve is not None:
        c = _Mapping(raw_curve, m.key("curve"), ("server_secret_key", "authorized_clients"))
        curve = CurveSection(
            server_secret_key=_existing(c, "server_secret_key", Path.is_file, "file", base_dir),
            authorized_clients=_existing(
                c, "authorized_clients", Path.is_dir, "directory", base_dir
            ),
        )
    return PublishSection(bind, sndhwm, curve)


def _metrics(value: Any) -> MetricsSection:
    m = _Mapping(value, "metrics", ("bind",))
    bind = m.take("bind", str, MetricsSection().bind)
    host, sep, port = bind.rpartition(":")
    _check(
        m.key("bind"),
        bool(sep and host and port.isdigit() and int(port) <= 65535),
        f"expected HOST:PORT, got {bind!r}",
    )
    return MetricsSection(bind)


def _shard(value: Any) -> ShardSection:
    m = _Mapping(value, "shard", ("index", "count"))
    count = _number(m, "count", 1, int, low=1)
    index = _number(m, "index", 0, int, low=0)
    _check(m.key("index"), index < count, f"must be < shard.count ({count}), got {index}")
    return ShardSection(index, count)


# ----------------------------------------------------------------------------- public


def parse_config(mapping: Any, *, base_dir: str | Path | None = None) -> PipelineConfig:
    """Validate an already-loaded mapping. Relative paths (checkpoint, CURVE keys)
    are resolved against `base_dir` (the config file's folder; default: cwd)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    root = _Mapping(
        mapping, "", ("model", "streams", "ingest", "worker", "publish", "metrics", "shard")
    )
    config = PipelineConfig(
        model=_model(root.take("model", Any, None), base),
        streams=_streams(root.take("streams", Any)),
        ingest=_ingest(root.take("ingest", Any, None)),
        worker=_worker(root.take("worker", Any, None)),
        publish=_publish(root.take("publish", Any, None), base),
        metrics=_metrics(root.take("metrics", Any, None)),
        shard=_shard(root.take("shard", Any, None)),
    )
    return config


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML file; relative paths inside are relative to it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(mapping, base_dir=path.parent)


def default_demo_config(cameras: int = 3) -> PipelineConfig:
    """The demo's pipeline: synthetic digit cameras with different seeds and the
    builtin checkpoint, everything on loopback with DESIGN.md's default ports."""
    streams = tuple(
        StreamSection(id=f"cam-{i}", uri=f"synthetic://digits?fps=25&seed={i}")
        for i in range(1, cameras + 1)
    )
    return PipelineConfig(model=ModelSection(), streams=streams)
