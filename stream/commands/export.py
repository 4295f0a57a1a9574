"""`adafocus-stream export URI --out DIR`: write a synthetic scene as a labelled video
folder (H.264 clips + labels.csv, no boxes), the layout `train` (data.source: folder)
and `eval --data` read. Clip k renders the URI's scene with seed + k, so
`synthetic://digits?split=train` and `?split=test` give disjoint handwriting."""

from __future__ import annotations

import argparse
import re
import sys

from stream.exitcodes import EXIT_USAGE

_SIZE = re.compile(r"(\d+)x(\d+)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="a synthetic:// source, e.g. "
                        "'synthetic://digits?split=train&seed=0&fps=25' or synthetic://pattern")
    parser.add_argument("--out", required=True, help="new folder for the clips and labels.csv")
    parser.add_argument("--clips", type=int, default=16, help="clips to write (default 16)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="length of each clip (default 4)")
    parser.add_argument("--size", default="128x128",
                        help="frame WIDTHxHEIGHT, both even (default 128x128; e.g. 192x144)")


def _size(text: str) -> tuple[int, int] | None:
    """'192x144' -> (144, 192) (height, width); None unless both are even and > 0."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    width, height = int(match[1]), int(match[2])
    return (height, width) if width > 0 and height > 0 and not width % 2 and not height % 2 \
        else None


def run(args: argparse.Namespace) -> int:
    from adafocus.data.export import export_folder
    from stream.ingest.sources.synthetic import make_scene
    from stream.ingest.uri import SourceError, parse_source

    def fail(message: str) -> int:
        print(f"adafocus-stream export: {message}", file=sys.stderr)
        return EXIT_USAGE

    size = _size(args.size)
    if size is None:
        return fail(f"--size must be WIDTHxHEIGHT with even numbers (H.264), got {args.size!r}")
    if args.clips < 1 or args.seconds <= 0:
        return fail("--clips and --seconds must be positive")
    try:
        spec = parse_source(args.uri)
        if spec.kind != "synthetic":
            return fail(f"only synthetic:// scenes can be exported, got {spec.masked}")
        params = spec.scene_params
        scenes = [make_scene(spec.scene or "", {**params, "seed": params["seed"] + k}, *size)
                  for k in range(args.clips)]
        labels = export_folder(scenes, args.out, args.seconds, params["fps"])
    except (SourceError, FileExistsError, ValueError) as exc:
        return fail(str(exc))
    print(f"wrote {args.clips} clip(s) of {args.seconds:g} s and {labels}")
    return 0
