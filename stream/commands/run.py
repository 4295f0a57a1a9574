"""`adafocus-stream run CONFIG.yaml`: the pipeline as a service.

Validates the whole config before starting anything, so a mistake is one clear
line and exit status 2 (no traceback, no half-started processes); then runs the
supervisor until SIGINT/SIGTERM (exit 0). SIGHUP reloads the stream list.

Which shard this process serves, first match wins: `--shard I/N`; else the
environment (`ADAFOCUS_SHARD_COUNT`, with `ADAFOCUS_SHARD_INDEX` or the
StatefulSet hostname ordinal: every pod of a StatefulSet shares one config, so
only the pod itself knows its index); else the config's `shard:` section. It is
fixed for the life of the process: a SIGHUP reload keeps it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stream.config import ConfigError, PipelineConfig, ShardSection
from stream.exitcodes import EXIT_USAGE
from stream.serve.api.overlay import load_effective
from stream.serve.sharding import ShardError, parse_shard, shard_from_env


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config_file", nargs="?", metavar="CONFIG.yaml", help="pipeline config")
    parser.add_argument("--config", help="the same, as an option")
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="serve only shard I of N (0-based); overrides ADAFOCUS_SHARD_COUNT/INDEX "
        "and the config's shard section",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )


def setup_logging(level: str) -> None:
    """One line per event on stderr, with the process-independent logger names
    (adafocus.supervisor, adafocus.worker, ...)."""
    from stream.serve.children import LOG_FORMAT

    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def with_shard(config: PipelineConfig, flag: str | None) -> tuple[PipelineConfig, str]:
    """The config with the shard chosen by precedence (see the module docstring),
    and where it came from. Raises ShardError naming the bad flag or variable."""
    if flag is not None:
        try:
            shard, source = parse_shard(flag), "--shard"
        except ShardError as exc:
            raise ShardError(f"--shard: {exc}") from None
    else:
        shard, source = shard_from_env(), "the environment"
    if shard is None:
        return config, "the config"
    section = ShardSection(index=shard.index, count=shard.count)
    return config.model_copy(update={"shard": section}), source


def run(args: argparse.Namespace) -> int:
    path = args.config_file or args.config
    if path is None:
        print("adafocus-stream run: give the config file: run CONFIG.yaml", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, shard_source = with_shard(load_effective(path), args.shard)
    except (ConfigError, ShardError) as exc:
        print(f"adafocus-stream run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(args.log_level)
    if config.shard.count > 1:
        shard = config.shard
        logging.getLogger("adafocus.run").info(
            "serving shard %d/%d (from %s)", shard.index, shard.count, shard_source
        )
    return supervise(config, "adafocus-stream run", path)


def supervise(config: PipelineConfig, prog: str, config_path: str | None = None) -> int:
    """Run the supervisor to the end; a start-up problem is one line on stderr,
    prefixed by `prog`, and exit status 2. `run`, the demo and the bench's probes
    all start the pipeline through here, so they fail alike."""
    from stream.serve.supervisor import Supervisor, SupervisorError

    try:
        return Supervisor(config, config_path).run()
    except SupervisorError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
