"""Bearer tokens come from a file, are re-read when it changes, and must be long
enough to be secret; sessions of the live page end with their token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream.serve.api.auth import Sessions, TokenFileError, Tokens

pytestmark = pytest.mark.timeout(30)

TOKEN = "0123456789abcdef-first"
OTHER = "fedcba9876543210-second"


def write(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))  # a new mtime whatever the file system's resolution


def test_tokens_are_read_one_a_line_and_rotated_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write(path, f"# the operators\n{TOKEN}\n\n", 1_000_000_000)
    tokens = Tokens(path)
    assert tokens.match(TOKEN) is not None
    assert tokens.match(OTHER) is None and tokens.match("# the operators") is None
    write(path, f"{OTHER}\n", 2_000_000_000)
    assert tokens.match(OTHER) is not None and tokens.match(TOKEN) is None
    path.unlink()
    assert tokens.match(OTHER) is None  # a token file gone accepts nobody


def test_a_short_token_is_refused_at_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("short\n")
    with pytest.raises(TokenFileError, match=r"^api.token_file: 1 token\(s\)"):
        Tokens(path)


def test_without_a_token_file_no_token_matches() -> None:
    tokens = Tokens(None)
    assert not tokens.configured and tokens.match(TOKEN) is None


def test_sessions_expire_and_a_forged_one_is_refused() -> None:
    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    first = sessions.open(b"digest")
    assert sessions.digest(first) == b"digest"
    assert sessions.digest("forged") is None
    now[0] += 13 * 3600
    assert sessions.digest(first) is None
