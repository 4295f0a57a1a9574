"""Source URIs: every kind recognised, every malformed one refused with a message
naming the problem, and no password or token ever shown in clear, whatever
characters it holds."""

from __future__ import annotations

import pytest

from stream.ingest.uri import SourceError, mask_uri, parse_source, redact


@pytest.mark.parametrize(
    ("uri", "options", "kind", "expect"),
    [
        ("rtsp://cam/live", {}, "rtsp", {"rtsp_transport": "tcp"}),
        ("rtsps://cam:322/live", {"transport": "udp"}, "rtsp", {"rtsp_transport": "udp"}),
        ("rtsp://cam/live?channel=1&transport=udp", {}, "rtsp", {"rtsp_transport": "udp"}),
        ("https://cdn.example/live.m3u8", {}, "http", {}),
        ("/videos/a.mp4", {}, "file", {}),
        ("clips/a.mkv", {"realtime": False}, "file", {}),
        ("file:///videos/a.mp4", {}, "file", {}),
        ("/dev/video2", {"av_options": {"video_size": "640x480"}}, "v4l2",
         {"video_size": "640x480"}),
        ("synthetic://pattern?fps=30&seed=3", {}, "synthetic", {}),
        ("synthetic://digits?split=val", {}, "synthetic", {}),
    ],
)
def test_parse_source_recognises_every_supported_kind(uri, options, kind, expect):
    spec = parse_source(uri, options)
    assert spec.kind == kind
    assert spec.av_options == expect


def test_parse_source_keeps_camera_query_but_takes_out_its_own_transport_parameter():
    spec = parse_source("rtsp://u:pw@cam/live?channel=1&transport=udp")
    assert spec.url == "rtsp://u:pw@cam/live?channel=1"
    assert spec.masked == "rtsp://u:***@cam/live?channel=1&transport=udp"


def test_files_play_at_native_rate_unless_asked_not_to_and_only_they_end():
    assert parse_source("/a.mp4").realtime and not parse_source("/a.mp4").live
    assert not parse_source("/a.mp4", {"realtime": False}).realtime
    assert parse_source("rtsp://cam/x").live
    spec = parse_source("synthetic://digits?fps=12.5&seed=4&split=train")
    assert (spec.scene, spec.scene_params) == ("digits", {"fps": 12.5, "seed": 4, "split": "train"})


@pytest.mark.parametrize(
    ("uri", "options", "message"),
    [
        ("", {}, "empty source URI"),
        ("rtsp://", {}, "has no host"),
        ("rtsp://:pw@/x", {}, "has no host"),
        ("rtsp://cam:99999/x", {}, "malformed source URI"),
        ("rtsp://cam:port/x", {}, "malformed source URI"),
        ("ftp://cam/x", {}, "unsupported source scheme 'ftp'"),
        ("rtsp:/cam/x", {}, "malformed source URI"),
        ("rtsp://cam/x", {"transport": "sctp"}, "transport must be one of"),
        ("http://cam/x", {"transport": "udp"}, "only applies to rtsp"),
        ("synthetic://nope", {}, "unknown synthetic scene 'nope'"),
        ("synthetic://pattern?fps=0", {}, "bad fps='0'"),
        ("synthetic://pattern?fps=abc", {}, "bad fps='abc'"),
        ("synthetic://pattern?split=val", {}, "unknown parameter 'split'"),
        ("synthetic://digits?split=dev", {}, "bad split='dev'"),
        ("/a.mp4", {"realtme": False}, "unknown stream option"),
        ("/a.mp4", {"realtime": "yes"}, "realtime must be true or false"),
    ],
)
def test_malformed_uris_are_rejected_with_a_message_naming_the_problem(uri, options, message):
    with pytest.raises(SourceError, match=message):
        parse_source(uri, options)


def test_credentials_are_masked_in_uris_error_messages_and_parse_errors():
    uri = "rtsp://admin:s3cret!@10.0.0.5:554/stream1?token=abcdef&channel=2"
    masked = mask_uri(uri)
    assert "s3cret" not in masked and "abcdef" not in masked
    assert masked.startswith("rtsp://admin:***@10.0.0.5:554/stream1?") and "channel=2" in masked
    assert "s3cret" not in redact(f"[Errno 111] Connection refused: '{uri}' (pw s3cret!)", uri)
    with pytest.raises(SourceError) as caught:
        parse_source("rtsp://admin:s3cret!@cam:99999/x")
    assert "s3cret" not in str(caught.value)
    assert mask_uri("/plain/path.mp4") == "/plain/path.mp4"


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("rtsp://viewer:Pa/ss@host/cam", "rtsp://viewer:***@host/cam"),
        ("rtsp://viewer:Pa#ss@host/cam", "rtsp://viewer:***@host/cam"),
        ("rtsp://viewer:Pa?ss@host:554/cam?x=1", "rtsp://viewer:***@host:554/cam?x=1"),
        ("rtsp://h/c?user_token=abc&access_key=zz&x=2", "rtsp://h/c?user_token=***&access_key=***&x=2"),
        ("rtsp://h/x?password=hunter2#frag", "rtsp://h/x?password=***#frag"),
        ("rtsp://user@host/x", "rtsp://user@host/x"),
        ("http://host/p?e=a@b", "http://host/p?e=a@b"),
        ("synthetic://digits?fps=25", "synthetic://digits?fps=25"),
    ],
)
def test_passwords_with_any_characters_and_secret_query_keys_are_masked(uri, masked):
    assert mask_uri(uri) == masked


def test_a_uri_that_does_not_parse_is_masked_too():
    uri = "rtsp://admin:Pa/ss@[::1:554/x"  # a bad IPv6 host: urlsplit refuses it
    assert mask_uri(uri) == "rtsp://admin:***@[::1:554/x"
    with pytest.raises(SourceError) as caught:
        parse_source(uri)
    assert "Pa/ss" not in str(caught.value) and "admin:***@" in str(caught.value)
    assert "Pa/ss" not in redact(f"cannot open {uri}: Pa/ss refused", uri)
