"""The pipeline's one YAML configuration file, read once at start and validated.

Why validate everything up front: a typo in a key or a camera URI found at start
costs a second; found at 3 a.m. as a stream that silently never came up it costs
a night. So every problem of the file is reported at once, each with its key
path ("streams[1].uri: ...", "model.device: ..."), unknown keys are errors, and
the result is a tree of frozen sections nobody can change behind the
supervisor's back. The schema mechanism is the project's one (adafocus.schema,
pydantic); the sections are also what the children receive, so no setting is
mirrored into a second class. URIs may carry credentials: they are accepted, but
no message and no `repr` shows them other than through `mask_uri`.

The keys and their meaning are documented in README.md ("Contracts: configuration").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adafocus.interface import BUILTIN_PREFIX, SKIP_MODES, CheckpointError, resolve_spec
from adafocus.schema import LISTS_OK, Schema, ValidationError, located, problems
from stream.infer import read_only
from stream.ingest.uri import TRANSPORTS, SourceError, mask_uri, parse_source
from stream.wire.curve import CurveError, load_key_pair

STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
ZMQ_ENDPOINT = re.compile(
    r"(tcp://(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d+|\*)|ipc://\S+|inproc://\S+)"
)
MAX_RING_SLOTS = 1024

Name = Annotated[str, Field(strict=True)]
Count = Annotated[int, Field(strict=True, ge=1)]
Seconds = Annotated[float, Field(strict=True, gt=0)]


class ConfigError(ValueError):
    """A configuration problem; each line of `problems` starts with its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        text = self.problems[0] if count == 1 else f"{count} problems: " + "; ".join(self.problems)
        super().__init__(text)


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir") or Path.cwd())


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


class SkipSection(Schema):
    mode: Any = "confidence"
    budget: StrictFloat = 0.3

    @field_validator("mode")
    @classmethod
    def _mode(cls, mode: Any) -> str:
        mode = "off" if mode is False else mode  # YAML 1.1 reads a bare `off` as false
        if mode not in SKIP_MODES:
            raise ValueError(f"expected one of {', '.join(SKIP_MODES)}, got {mode!r}")
        return mode

    @field_validator("budget")
    @classmethod
    def _budget(cls, budget: float) -> float:
        if not 0.0 <= budget <= 1.0:
            raise ValueError(f"must be within 0..1, got {budget}")
        return budget


class ModelSection(Schema):
    checkpoint: Name = "builtin:digits"
    device: Name = "auto"
    skip: SkipSection = SkipSection()
    max_batch: Count = 32

    @property
    def skip_mode(self) -> str:
        return self.skip.mode

    @property
    def budget(self) -> float:
        return self.skip.budget

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint(cls, spec: str, info: ValidationInfo) -> str:
        if spec.startswith(read_only.PREFIX):  # no model: the decode ceiling (benchmarks)
            read_only.parse_size(spec)
            return spec
        if spec.startswith(BUILTIN_PREFIX):
            try:
                resolve_spec(spec)
            except CheckpointError as exc:
                raise ValueError(str(exc)) from None
            return spec
        path = _resolve(spec, _base_dir(info))
        if not path.is_file():
            raise ValueError(f"no such file {path}")
        return str(path)

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if DEVICE.fullmatch(device) is None:
            raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {device!r}")
        if device.startswith("cuda"):
            import torch  # only a config asking for CUDA pays for loading torch

            if not torch.cuda.is_available():
                raise ValueError(f"{device!r} asked but CUDA is not available on this machine")
            index = int(device.partition(":")[2] or 0)
            count = torch.cuda.device_count()
            if index >= count:
                raise ValueError(f"{device!r} asked but this machine has {count} CUDA device(s)")
        return device


class StreamSection(Schema):
    id: Name
    uri: Name = Field(repr=False)
    transport: Name = "tcp"
    realtime: StrictBool = True
    lossless: StrictBool = False

    def __repr_args__(self) -> Any:
        # The default repr would print the URI, password included.
        for name, value in super().__repr_args__():
            yield name, value
            if name == "id":
                yield "uri", mask_uri(self.uri)

    @field_validator("id")
    @classmethod
    def _id(cls, stream_id: str) -> str:
        if STREAM_ID.fullmatch(stream_id) is None:
            raise ValueError(f"{stream_id!r} is not 1-64 characters of A-Z a-z 0-9 _ . -")
        return stream_id

    @field_validator("uri")
    @classmethod
    def _uri(cls, uri: str) -> str:
        try:
            parse_source(uri)
        except SourceError as exc:  # its message masks credentials already
            raise ValueError(str(exc)) from None
        return uri

    @field_validator("transport")
    @classmethod
    def _transport(cls, transport: str) -> str:
        if transport not in TRANSPORTS:
            raise ValueError(f"expected one of {', '.join(TRANSPORTS)}, got {transport!r}")
        return transport

    @model_validator(mode="after")
    def _transport_needs_rtsp(self) -> StreamSection:
        if self.transport != "tcp" and parse_source(self.uri).kind != "rtsp":
            raise located("stream", [(("transport",),
                                      f"{self.transport!r} only applies to rtsp:// sources")])
        return self

    @property
    def source_options(self) -> dict[str, Any]:
        """The options `stream.ingest.uri.parse_source` takes from this section."""
        return {"transport": self.transport, "realtime": self.realtime}


class IngestSection(Schema):
    ring_slots: Annotated[int, Field(strict=True, ge=2, le=MAX_RING_SLOTS)] = 8
    stall_timeout_s: Seconds = 5.0
    open_timeout_s: Seconds = 10.0
    backoff_initial_s: Seconds = 0.5
    backoff_max_s: Seconds = 30.0
    backoff_jitter: Annotated[float, Field(strict=True, ge=0, le=1)] = 0.25
    # Streams decoded by one producer process, each in its own thread
    # (stream.ingest.group: memory per stream against isolation; 1: a process each).
    streams_per_process: Annotated[int, Field(strict=True, ge=1, le=256)] = 16
    # libav threads per stream's decoder; 0: libav's choice (one per core, per stream).
    # Streams already decode in parallel, so more only adds threads and CPU per frame.
    decode_threads: Annotated[int, Field(strict=True, ge=0, le=64)] = 1

    @model_validator(mode="after")
    def _backoff_range(self) -> IngestSection:
        if self.backoff_max_s < self.backoff_initial_s:
            raise located("ingest", [(("backoff_max_s",), "must be >= ingest.backoff_initial_s")])
        return self


class WorkerSection(Schema):
    hang_timeout_s: Seconds = 15.0
    # A tick starts at most this often (stream.infer.pacing): frames gather in
    # between and go through the model in one batch. Never more than half the
    # shortest frame interval seen, so no live frame is overwritten by waiting.
    tick_interval_s: Annotated[float, Field(strict=True, ge=0, le=1)] = 0.02
    threads: Count = 1


class LimitsSection(Schema):
    """What this host is trusted to serve: a config beyond it is refused at start and
    on every reload (stream.serve.admission). Not a producer setting: a reload that
    changes it restarts nothing."""

    max_streams: Count = 256


class CurveSection(Schema):
    server_secret_key: Path
    authorized_clients: Path

    @field_validator("server_secret_key", mode="before")
    @classmethod
    def _secret_key(cls, value: Any, info: ValidationInfo) -> Path:
        path = _existing(value, info, Path.is_file, "file")
        try:
            load_key_pair(path)  # a public .key, or garbage, fails here and not at bind
        except CurveError as exc:
            raise ValueError(str(exc)) from None
        return path

    @field_validator("authorized_clients", mode="before")
    @classmethod
    def _clients(cls, value: Any, info: ValidationInfo) -> Path:
        return _existing(value, info, Path.is_dir, "directory")


def _existing(value: Any, info: ValidationInfo, is_kind: Any, what: str) -> Path:
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    path = _resolve(value, _base_dir(info))
    if not is_kind(path):
        raise ValueError(f"no such {what} {path}")
    return path


class PublishSection(Schema):
    bind: Name = "tcp://127.0.0.1:5556"
    sndhwm: Count = 1000
    curve: CurveSection | None = None

    @field_validator("bind")
    @classmethod
    def _bind(cls, bind: str) -> str:
        if ZMQ_ENDPOINT.fullmatch(bind) is None:
            raise ValueError(f"expected tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {bind!r}")
        return bind


class MetricsSection(Schema):
    bind: Name = "127.0.0.1:9108"

    @field_validator("bind")
    @classmethod
    def _bind(cls, bind: str) -> str:
        host, sep, port = bind.rpartition(":")
        if not (sep and host and port.isdigit() and int(port) <= 65535):
            raise ValueError(f"expected HOST:PORT, got {bind!r}")
        return bind

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


class ApiSection(Schema):
    """The stream API and live view, served beside /metrics (stream.serve.api)."""

    token_file: Path | None = None  # bearer tokens, one a line; None: no call can mutate
    state_file: Path | None = None  # the API's changes; None: beside the config file
    preview_fps: Annotated[float, Field(strict=True, gt=0, le=30)] = 5.0
    max_viewers: Annotated[int, Field(strict=True, ge=1, le=1024)] = 32

    @field_validator("token_file", mode="before")
    @classmethod
    def _token_file(cls, value: Any, info: ValidationInfo) -> Path | None:
        return None if value is None else _existing(value, info, Path.is_file, "file")

    @field_validator("state_file", mode="before")
    @classmethod
    def _state_file(cls, value: Any, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        path = _resolve(value, _base_dir(info))
        if not path.parent.is_dir():
            raise ValueError(f"no such directory {path.parent}")
        return path


class ShardSection(Schema):
    index: Annotated[int, Field(strict=True, ge=0)] = 0
    count: Count = 1

    @model_validator(mode="after")
    def _index_in_range(self) -> ShardSection:
        if self.index >= self.count:
            raise located("shard", [(("index",),
                                     f"must be < shard.count ({self.count}), got {self.index}")])
        return self


class PipelineConfig(Schema):
    model: ModelSection = ModelSection()
    streams: Annotated[tuple[StreamSection, ...], LISTS_OK]
    ingest: IngestSection = IngestSection()
    worker: WorkerSection = WorkerSection()
    publish: PublishSection = PublishSection()
    metrics: MetricsSection = MetricsSection()
    api: ApiSection = ApiSection()
    shard: ShardSection = ShardSection()
    limits: LimitsSection = LimitsSection()

    @field_validator("streams", mode="before")
    @classmethod
    def _some_streams(cls, streams: Any) -> Any:
        if isinstance(streams, (list, tuple)) and not streams:
            raise ValueError("at least one stream is required")
        return streams

    @model_validator(mode="after")
    def _unique_ids(self) -> PipelineConfig:
        first: dict[str, int] = {}
        duplicates = []
        for i, stream in enumerate(self.streams):
            if stream.id in first:
                duplicates.append((("streams", i, "id"), f"duplicate stream id {stream.id!r} "
                                   f"(also streams[{first[stream.id]}])"))
            first.setdefault(stream.id, i)
        if duplicates:
            raise located("config", duplicates)
        return self


def parse_config(mapping: Any, *, base_dir: str | Path | None = None) -> PipelineConfig:
    """Validate an already-loaded mapping. Relative paths (checkpoint, CURVE keys)
    are resolved against `base_dir` (the config file's folder; default: cwd).
    Raises ConfigError listing every problem."""
    if mapping is None:
        mapping = {}
    try:
        return PipelineConfig.model_validate(mapping, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(problems(exc, PipelineConfig)) from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML file; relative paths inside are relative to it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(mapping, base_dir=path.parent)


def default_demo_config(cameras: int = 3) -> PipelineConfig:
    """The demo's pipeline: synthetic digit cameras with different seeds and the
    builtin checkpoint, everything on loopback with the default ports."""
    streams = tuple(
        StreamSection(id=f"cam-{i}", uri=f"synthetic://digits?fps=25&seed={i}")
        for i in range(1, cameras + 1)
    )
    return PipelineConfig(streams=streams)
