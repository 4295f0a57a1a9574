"""Who may call the stream API: bearer tokens read from `api.token_file`.

The rules (README.md, "Stream API"):

- a call that changes something (POST, PUT, DELETE) always needs
  `Authorization: Bearer <token>`, wherever the server is bound;
- every other call of the API and the live view needs one too when the server
  is bound beyond loopback; on loopback, reading is open (like /metrics);
- /metrics, /healthz, /livez never need one, and neither do the live page's own
  files (they hold no data: everything the page shows comes from calls above).

A browser cannot put a header on `<img src>` or `EventSource`, so the page
trades a token for a session cookie (POST /session with the bearer header):
HttpOnly, SameSite=Strict, accepted for reading only, so a cookie can never
make a change (no cross-site request forgery), and it stops working when its
token leaves the file. The token file is re-read when it changes: tokens are
rotated without a restart. Tokens are compared in constant time and never
logged; sessions live in memory, bounded, and end with the process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from fastapi import HTTPException, Request, Response

COOKIE = "adafocus_session"
SESSION_S = 12 * 3600
MAX_SESSIONS = 1024
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; a wildcard or any other name is not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenFileError(ValueError):
    """The token file cannot be used; the message names `api.token_file`."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def read_tokens(path: Path) -> frozenset[bytes]:
    """The SHA-256 of every token in `path`: one a line, `#` comments and blank
    lines ignored. Raises TokenFileError for a token too short to be secret."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"api.token_file: cannot read {path}: {exc}") from None
    tokens = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    short = sum(1 for t in tokens if len(t) < MIN_TOKEN_CHARS)
    if short:
        raise TokenFileError(f"api.token_file: {short} token(s) in {path} shorter than "
                             f"{MIN_TOKEN_CHARS} characters")
    return frozenset(_digest(t) for t in tokens)


class Tokens:
    """The tokens of a file, re-read whenever its modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._digests: frozenset[bytes] = frozenset()
        if path is not None:
            self.current()  # a bad file is a start-up error

    @property
    def configured(self) -> bool:
        return self._path is not None

    def current(self) -> frozenset[bytes]:
        if self._path is None:
            return frozenset()
        stat = self._path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._digests = read_tokens(self._path)
                self._stamp = stamp
            return self._digests

    def known(self) -> frozenset[bytes]:
        """`current()`, or nothing while the file is gone or broken: nobody gets in."""
        try:
            return self.current()
        except (OSError, TokenFileError):
            return frozenset()

    def match(self, token: str) -> bytes | None:
        """The digest of `token` when it is one of the file's, else None."""
        digest = _digest(token)
        found = False
        for candidate in self.known():  # every candidate compared: no early exit to time
            found |= hmac.compare_digest(candidate, digest)
        return digest if found else None


class Sessions:
    """Session cookies of the live page: id -> (token digest, expiry)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def open(self, digest: bytes) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session] = (digest, self._clock() + SESSION_S)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def digest(self, session: str) -> bytes | None:
        with self._lock:
            found = self._sessions.get(session)
            if found is not None and found[1] < self._clock():
                del self._sessions[session]
                found = None
        return None if found is None else found[0]


def _unauthorized(problem: str) -> HTTPException:
    return HTTPException(401, detail=[f"authorization: {problem}"],
                         headers={"WWW-Authenticate": "Bearer"})


class Guard:
    """FastAPI dependencies: `read` for every API call, `write` for changes.
    `open_reads`: the server is bound to loopback only."""

    def __init__(self, tokens: Tokens, open_reads: bool) -> None:
        self.tokens = tokens
        self.open_reads = open_reads
        self.sessions = Sessions()

    def _bearer(self, request: Request) -> bytes | None:
        """The digest of a valid bearer token; 401 for a wrong one, None for none."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not token:
            return None
        if scheme.lower() != "bearer":
            raise _unauthorized("expected 'Bearer <token>'")
        if not self.tokens.configured:
            raise _unauthorized("no token is configured (api.token_file)")
        digest = self.tokens.match(token.strip())
        if digest is None:
            raise _unauthorized("unknown token")
        return digest

    def write(self, request: Request) -> None:
        if self._bearer(request) is None:
            why = "a change needs 'Authorization: Bearer <token>'"
            raise _unauthorized(why if self.tokens.configured
                                else why + "; no token is configured (api.token_file)")

    def read(self, request: Request) -> None:
        if self._bearer(request) is not None or self.open_reads:
            return
        session = request.cookies.get(COOKIE)
        digest = None if session is None else self.sessions.digest(session)
        if digest is not None and digest in self.tokens.known():
            return
        raise _unauthorized("this server is bound beyond loopback: every call needs a token")

    def login(self, request: Request, response: Response) -> None:
        """POST /session: a valid bearer token buys a session cookie."""
        digest = self._bearer(request)
        if digest is None:
            raise _unauthorized("send 'Authorization: Bearer <token>' to open a session")
        response.set_cookie(COOKIE, self.sessions.open(digest), max_age=SESSION_S,
                            httponly=True, samesite="strict", path="/")
