"""The config file: every mistake is reported with the key path and the problem,
and credentials in URIs never show up in clear."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import zmq.auth

from stream.config import (
    ConfigError,
    IngestSection,
    PipelineConfig,
    default_demo_config,
    load_config,
    parse_config,
)
from stream.ingest.uri import parse_source

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cr3t-pw"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(b"not loaded by the config, only checked to exist")
    return path


@pytest.fixture
def good(checkpoint: Path) -> dict[str, Any]:
    return {
        "model": {"checkpoint": str(checkpoint), "device": "cpu"},
        "streams": [
            {"id": "cam-1", "uri": "synthetic://digits?fps=25&seed=1"},
            {"id": "gate.2", "uri": f"rtsp://admin:{SECRET}@10.0.0.5/stream1"},
        ],
    }


def with_change(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the dotted `path` (list indexes as numbers) set."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_good_config_gets_defaults_and_keeps_the_real_uri(good: dict[str, Any]) -> None:
    config = parse_config(good)
    assert isinstance(config, PipelineConfig)
    assert [s.id for s in config.streams] == ["cam-1", "gate.2"]
    assert config.streams[1].uri == f"rtsp://admin:{SECRET}@10.0.0.5/stream1"  # producers need it
    assert config.streams[1].transport == "tcp" and config.streams[1].realtime
    assert config.ingest == IngestSection()
    assert config.publish.bind == "tcp://127.0.0.1:5556" and config.publish.curve is None
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9108)
    assert config.model.skip_mode == "confidence" and config.model.budget == 0.3


def test_credentials_never_appear_in_repr(good: dict[str, Any]) -> None:
    text = repr(parse_config(good))
    assert SECRET not in text
    assert "gate.2" in text and "10.0.0.5" in text


def test_numbers_where_floats_belong_are_accepted(good: dict[str, Any]) -> None:
    config = parse_config(with_change(good, "model.skip", {"mode": "off", "budget": 1}))
    assert config.model.budget == 1.0 and isinstance(config.model.budget, float)


@pytest.mark.parametrize(
    ("path", "value", "key", "problem"),
    [
        # unknown keys at several depths
        ("modle", {}, "modle", "unknown key"),
        ("model.skip.bugdet", 0.2, "model.skip.bugdet", "unknown key"),
        ("streams.1.url", "x", "streams[1].url", "unknown key"),
        (
            "publish.curve",
            {"server_secret_key": "k", "extra": 1},
            "publish.curve.extra",
            "unknown key",
        ),
        ("shard.replicas", 2, "shard.replicas", "unknown key"),
        # wrong types
        ("model", ["cpu"], "model", "expected a mapping, got list"),
        ("model.max_batch", "32", "model.max_batch", "expected an integer, got str"),
        ("ingest.ring_slots", True, "ingest.ring_slots", "expected an integer, got bool"),
        ("worker.hang_timeout_s", "10", "worker.hang_timeout_s", "expected a number, got str"),
        ("streams.0.realtime", "yes", "streams[0].realtime", "expected true or false"),
        ("streams.1.uri", 5554, "streams[1].uri", "expected a string, got int"),
        ("streams", {"id": "a"}, "streams", "expected a list, got dict"),
        ("streams.0", "synthetic://digits", "streams[0]", "expected a mapping, got str"),
        # bad values
        ("streams", [], "streams", "at least one stream"),
        ("streams.0", {"uri": "synthetic://digits"}, "streams[0].id", "required key is missing"),
        ("streams.0.id", "has space", "streams[0].id", "not 1-64 characters"),
        ("streams.0.id", "x" * 65, "streams[0].id", "not 1-64 characters"),
        ("streams.1.id", "cam-1", "streams[1].id", "duplicate stream id 'cam-1' (also streams[0])"),
        ("streams.0.transport", "sctp", "streams[0].transport", "expected one of tcp, udp"),
        ("streams.0.transport", "udp", "streams[0].transport", "only applies to rtsp://"),
        ("model.device", "gpu", "model.device", "expected auto, cpu, cuda or cuda:N"),
        ("model.skip.mode", "sometimes", "model.skip.mode", "expected one of off, confidence"),
        ("model.skip.budget", 1.5, "model.skip.budget", "within 0..1"),
        ("model.max_batch", 0, "model.max_batch", "must be >= 1"),
        ("ingest.stall_timeout_s", 0, "ingest.stall_timeout_s", "must be > 0"),
        ("ingest.decode_threads", -1, "ingest.decode_threads", ">= 0"),
        ("ingest.backoff_max_s", 0.1, "ingest.backoff_max_s", ">= ingest.backoff_initial_s"),
        ("publish.bind", "localhost:5556", "publish.bind", "expected tcp://HOST:PORT"),
        ("publish.sndhwm", -1, "publish.sndhwm", "must be >= 1"),
        ("metrics.bind", "9108", "metrics.bind", "expected HOST:PORT"),
        ("shard", {"index": 2, "count": 2}, "shard.index", "must be < shard.count (2)"),
        (
            "model.checkpoint",
            "builtin:no-such-model",
            "model.checkpoint",
            "no builtin checkpoint 'no-such-model'",
        ),
    ],
)
def test_bad_config_names_the_key_and_the_problem(
    good: dict[str, Any], path: str, value: Any, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(with_change(good, path, value))
    named = [p for p in error.value.problems if p.startswith(f"{key}: ")]
    assert named and problem in named[0], error.value.problems
    assert SECRET not in str(error.value)


def test_missing_checkpoint_file_is_named(good: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=r"^model\.checkpoint: no such file .*nope\.pt"):
        parse_config(with_change(good, "model.checkpoint", str(missing)))


def test_missing_top_level_streams_is_named(good: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^streams: required key is missing"):
        parse_config({"model": good["model"]})


def test_whole_file_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^config: expected a mapping, got list"):
        parse_config([{"id": "a"}])


@pytest.mark.parametrize(
    "uri", ["gopher://host/x", f"rtspx://admin:{SECRET}@10.0.0.5/stream1", "synthetic://unicorns"]
)
def test_bad_uri_names_the_stream_and_hides_the_password(good: dict[str, Any], uri: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(with_change(good, "streams.1.uri", uri))
    assert str(error.value).startswith("streams[1].uri: ")
    assert SECRET not in str(error.value)


def test_cuda_device_needs_cuda_on_this_machine(good: dict[str, Any]) -> None:
    import torch

    if torch.cuda.is_available():
        assert parse_config(with_change(good, "model.device", "cuda")).model.device == "cuda"
        problem = "CUDA device"
    else:
        with pytest.raises(ConfigError, match=r"^model\.device: 'cuda' asked but CUDA is not"):
            parse_config(with_change(good, "model.device", "cuda"))
        problem = "CUDA is not available"
    with pytest.raises(ConfigError, match=rf"^model\.device: 'cuda:99' asked .*{problem}"):
        parse_config(with_change(good, "model.device", "cuda:99"))


def test_yaml_file_resolves_paths_next_to_it(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "keys").mkdir()
    zmq.auth.create_certificates(tmp_path / "keys", "server")
    (tmp_path / "clients").mkdir()
    (tmp_path / "pipeline.yaml").write_text(
        f"""
model:
  checkpoint: {checkpoint.name}
  device: auto
  skip: {{mode: off, budget: 0.5}}
streams:
  - {{id: gate-1, uri: "rtsp://user:{SECRET}@10.0.0.5/stream1", transport: udp}}
  - {{id: demo, uri: "synthetic://digits?fps=25", lossless: true, realtime: false}}
publish:
  bind: "tcp://127.0.0.1:*"
  curve: {{server_secret_key: keys/server.key_secret, authorized_clients: clients}}
metrics: {{bind: "127.0.0.1:0"}}
shard: {{index: 1, count: 3}}
"""
    )
    config = load_config(tmp_path / "pipeline.yaml")
    assert config.model.checkpoint == str(tmp_path / "model.pt")
    assert config.model.skip_mode == "off" and config.model.budget == 0.5
    assert config.streams[0].transport == "udp"
    assert config.streams[1].lossless and not config.streams[1].realtime
    assert config.publish.curve is not None
    assert config.publish.curve.server_secret_key == tmp_path / "keys" / "server.key_secret"
    assert config.publish.curve.authorized_clients == tmp_path / "clients"
    assert (config.shard.index, config.shard.count) == (1, 3)


def test_curve_key_files_must_exist(good: dict[str, Any], tmp_path: Path) -> None:
    curve = {"server_secret_key": "missing.key_secret", "authorized_clients": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"^publish\.curve\.server_secret_key: no such file"):
        parse_config(with_change(good, "publish.curve", curve), base_dir=tmp_path)


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model: {checkpoint: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": not valid YAML"):
        load_config(path)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_demo_config_has_distinct_synthetic_cameras() -> None:
    config = default_demo_config()
    assert config.model.checkpoint == "builtin:digits"
    ids = [s.id for s in config.streams]
    assert 2 <= len(ids) <= 3 and len(set(ids)) == len(ids)
    seeds = {re.search(r"seed=(\d+)", s.uri).group(1) for s in config.streams}  # type: ignore[union-attr]
    assert len(seeds) == len(ids)
    for stream in config.streams:
        assert stream.uri.startswith("synthetic://digits")
        parse_source(stream.uri)  # raises if the demo URIs were not valid sources
