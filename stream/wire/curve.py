"""CURVE keys on ZeroMQ sockets, for every socket of the project that uses them.

Three roles need CURVE: the pipeline's public PUB and the proxy's XPUB serve it
(server keys plus a ZAP authenticator that admits only listed client keys:
without one, CURVE encrypts but lets any key pair in), the proxy's XSUB and the
`Subscriber` client connect with it (their own key pair plus the server's
public key). Key files are ZeroMQ certificates (`zmq.auth.create_certificates`):
`NAME.key` holds the public half, `NAME.key_secret` both halves.

A wrong file (the public `.key` where the `.key_secret` belongs, or not a
certificate at all) is a `CurveError` naming the file, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class CurveError(ValueError):
    """A CURVE key file or folder that cannot be used; the message names it."""


def _certificate(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError, TypeError) as exc:
        raise CurveError(f"{path}: not a ZeroMQ certificate ({exc})") from None
    if not public:
        raise CurveError(f"{path}: not a ZeroMQ certificate (no public key)")
    return public, secret


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """The public key of a `.key` (or `.key_secret`) certificate file."""
    return _certificate(path)[0]


def load_key_pair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) of a `.key_secret` certificate file."""
    public, secret = _certificate(path)
    if not secret:
        raise CurveError(f"{path}: has no secret key (use the .key_secret file, not the .key)")
    return public, secret


def serve_curve(
    context: zmq.Context,
    socket: zmq.Socket,
    secret_key_file: str | os.PathLike[str],
    authorized_clients: str | os.PathLike[str],
) -> ThreadAuthenticator:
    """Make `socket` (not yet bound) a CURVE server that admits only the client
    public keys found in the folder `authorized_clients`. The caller owns the
    returned authenticator and must `stop()` it after closing the socket."""
    public, secret = load_key_pair(secret_key_file)
    if not Path(authorized_clients).is_dir():
        raise CurveError(f"{authorized_clients}: authorized clients must be a directory")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized_clients))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return auth


def connect_curve(
    socket: zmq.Socket,
    key_pair_file: str | os.PathLike[str],
    server_public_file: str | os.PathLike[str],
) -> None:
    """Make `socket` (not yet connected) a CURVE client of the server whose
    public key is in `server_public_file`."""
    public, secret = load_key_pair(key_pair_file)
    socket.curve_serverkey = load_public_key(server_public_file)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
