"""`adafocus-stream streams list|add|rm`: the stream API from the command line.

Talks to a running pipeline's HTTP API (`--url`, default the pipeline's default
`metrics.bind`) like any client, with the token from `--token-file` (default
$ADAFOCUS_TOKEN_FILE) when one is given: `add` and `rm` always need it, `list`
when the pipeline is bound beyond loopback. Problems the API reports are
printed one a line as it words them (`uri: ...`); exit status 0 on success, 1
when the API refused, 2 for a usage error or a pipeline that cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from stream.exitcodes import EXIT_USAGE

DEFAULT_URL = "http://127.0.0.1:9108"
TOKEN_ENV = "ADAFOCUS_TOKEN_FILE"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the pipeline (default {DEFAULT_URL})")
    parser.add_argument("--token-file", type=Path, default=os.environ.get(TOKEN_ENV),
                        help=f"a file whose first token line is used (default ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="every stream with its state and last label")
    add = sub.add_parser("add", help="add a stream")
    add.add_argument("id")
    add.add_argument("uri")
    add.add_argument("--transport", choices=("tcp", "udp"), help="RTSP transport")
    add.add_argument("--no-realtime", dest="realtime", action="store_false", default=None,
                     help="play a file as fast as possible")
    add.add_argument("--lossless", action="store_true", default=None,
                     help="the worker takes every frame, not the newest")
    rm = sub.add_parser("rm", help="remove a stream")
    rm.add_argument("id")


class ApiError(Exception):
    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status = status
        self.problems = problems


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    raise ValueError(f"--token-file: no token in {path}")


def call(url: str, method: str, path: str, token: str | None, body: Any = None) -> Any:
    """One API call; the decoded JSON answer (None for 204). ApiError for a 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                problems = json.loads(exc.read())["problems"]
            except (ValueError, KeyError, TypeError):
                problems = [f"HTTP {exc.code} {exc.reason}"]
        raise ApiError(exc.code, problems) from None
    return json.loads(text) if text else None


def _saved(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def table(streams: list[dict[str, Any]]) -> str:
    rows = [("ID", "STATE", "LABEL", "SCORE", "SAVED", "FPS", "URI")]
    rows += [(s["id"], s["state"], s["label"] or "-",
              "-" if s["score"] is None else f"{s['score']:.2f}", _saved(s["compute_saved"]),
              f"{s['fps']:.1f}", s["uri"]) for s in streams]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                     + "  " + row[-1] for row in rows)


def run(args: argparse.Namespace) -> int:
    try:
        token = read_token(args.token_file)
    except (OSError, ValueError) as exc:
        print(f"adafocus-stream streams: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.action == "list":
            answer = call(args.url, "GET", "/streams", token)
            print(json.dumps(answer, indent=2) if args.json else table(answer["streams"]))
        elif args.action == "add":
            body = {"id": args.id, "uri": args.uri}
            body.update({key: getattr(args, key) for key in ("transport", "realtime", "lossless")
                         if getattr(args, key) is not None})
            answer = call(args.url, "POST", "/streams", token, body)
            print(json.dumps(answer, indent=2) if args.json
                  else f"added {answer['id']} ({answer['state']})")
        else:
            call(args.url, "DELETE", f"/streams/{args.id}", token)
            print(f"removed {args.id}")
    except ApiError as exc:
        for problem in exc.problems:
            print(f"adafocus-stream streams {args.action}: {problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"adafocus-stream streams: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0
