"""The ``citywall`` command line: ``up`` (everything in one process), the separate roles ``worker``, ``wall``,
``cases`` and ``bridge`` (see ``citywall.roles``), ``check-config``, ``hash-password``, ``demo-media``, and the
learning loop's ``dataset`` and ``model`` (``citywall.learning_cli``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import getpass
import logging
import os
import socket
import sys
from pathlib import Path

from config import ConfigError, load_settings, redact_url

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"


def load_checked(path: str):
    """The settings file plus the case files it names, all validated before anything starts."""
    from cases.bundle import load_case_config

    settings = load_settings(path)
    c = settings.cases
    load_case_config(c.categories_file, c.dispatch_file, c.calendar_file, c.grid_file)
    return settings


def _cmd_up(args: argparse.Namespace) -> int:
    from citywall.up import run_up

    settings = load_checked(args.config)
    host = args.host if args.host is not None else settings.wall.host
    port = args.port if args.port is not None else settings.wall.port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_up(settings, host=host, port=port, config_path=Path(args.config)))
    return 0


def _cmd_role(args: argparse.Namespace) -> int:
    from citywall import roles

    settings = load_checked(args.config)
    roles.require_cluster(settings, args.command, args.config)
    if args.command == "worker":
        main = roles.run_worker(settings, name=args.name or roles.default_name("worker"))
    elif args.command == "cases":
        main = roles.run_cases(settings, name=args.name or f"cases-{socket.gethostname()}")
    elif args.command == "bridge":
        main = roles.run_bridge(settings, name=args.name or roles.default_name("bridge"))
    else:
        host = args.host if args.host is not None else settings.wall.host
        port = args.port if args.port is not None else settings.wall.port
        main = roles.run_wall(settings, host=host, port=port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_checked(args.config)
    zones = sum(len(c.zones) for c in settings.cameras)
    print(f"{args.config}: ok — {len(settings.cameras)} cameras, {zones} zones, {len(settings.users)} users")
    return 0


def _cmd_hash_password(args: argparse.Namespace) -> int:
    from wall.passwords import hash_password

    password = args.password
    if password is None:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("password: ")
            if password != getpass.getpass("again: "):
                print("passwords differ", file=sys.stderr)
                return 2
    print(hash_password(password))
    return 0


def _cmd_demo_media(args: argparse.Namespace) -> int:
    from demo.media import ensure_media

    settings = load_settings(args.config)
    paths = ensure_media(settings.demo.media_dir, settings.demo.seed)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citywall", description="City operations video wall and case filing")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything in one process: brokers (if none configured), cameras, "
                                   "detection, cases, the wall")
    up.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: the demo)")
    up.add_argument("--host", default=None, help="wall server address (default from config)")
    up.add_argument("--port", type=int, default=None, help="wall server port, 0 for any free one")
    up.set_defaults(func=_cmd_up)

    worker = sub.add_parser("worker", help="cameras: lease a fair share of the cameras from Redis and run their "
                                           "connections, detection and live video (needs brokers.redis_url, "
                                           "cluster.token)")
    worker.add_argument("--config", default=str(DEFAULT_CONFIG))
    worker.add_argument("--name", default=None, help="worker name, unique in the cluster (default host-pid)")
    worker.set_defaults(func=_cmd_role)

    wall = sub.add_parser("wall", help="a wall server; live video is proxied from the worker holding each camera")
    wall.add_argument("--config", default=str(DEFAULT_CONFIG))
    wall.add_argument("--host", default=None)
    wall.add_argument("--port", type=int, default=None)
    wall.set_defaults(func=_cmd_role)

    cases = sub.add_parser("cases", help="the case worker: alarms → cases (consumer group; idempotent)")
    cases.add_argument("--config", default=str(DEFAULT_CONFIG))
    cases.add_argument("--name", default=None, help="consumer name, unique per process (default cases-<host>)")
    cases.set_defaults(func=_cmd_role)

    bridge = sub.add_parser("bridge", help="the MQTT bridge; run two for availability (one forwards at a time)")
    bridge.add_argument("--config", default=str(DEFAULT_CONFIG))
    bridge.add_argument("--name", default=None, help="name in the cluster (default host-pid)")
    bridge.set_defaults(func=_cmd_role)

    check = sub.add_parser("check-config", help="validate a config file and exit non-zero naming what is wrong")
    check.add_argument("config")
    check.set_defaults(func=_cmd_check_config)

    hp = sub.add_parser("hash-password", help="print a password hash for the users section of the config")
    hp.add_argument("password", nargs="?", help="read from the terminal (or one line of stdin) when omitted")
    hp.set_defaults(func=_cmd_hash_password)

    dm = sub.add_parser("demo-media", help="generate (or find cached) demo scene videos")
    dm.add_argument("--config", default=str(DEFAULT_CONFIG))
    dm.set_defaults(func=_cmd_demo_media)

    from citywall.learning_cli import add_commands as add_learning_commands

    add_learning_commands(sub, DEFAULT_CONFIG)  # dataset export/prune, model train/list/compare/promote/rollback
    return parser


class RedactingFormatter(logging.Formatter):
    """Log lines with every URL's credentials masked (``config.redact_url``), tracebacks included: whatever a
    library puts in an exception message (a camera or database URL) never reaches the log in clear."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


def configure_logging(*, verbose: bool) -> None:
    """stderr logging for every command, through :class:`RedactingFormatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (what ``MALLOC_ARENA_MAX`` does) unless the environment already sets it.

    glibc gives threads that allocate at once arenas of their own, up to 8 per core; with a demux and a decode
    thread per camera, freed frame buffers stay scattered over many arenas and RSS creeps up. bench/soak.py, 16
    cameras: ~1,000–1,050 MiB still rising slowly after 14 min by default, ~750 MiB and flat with two arenas.
    Called first thing, before any thread exists. True when the cap was applied."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl has no arenas to cap)
        return False


def single_threaded_opencv() -> None:
    """One OpenCV thread per calling thread: a process that analyses many cameras gets its parallelism from the
    cameras (``detection.analysis_threads``), and OpenCV's own pool splitting each small resize or dilation over
    the cores costs more than it wins — on the judgement's scenes 31 ms of CPU a frame (a quarter of it system
    time) against 21 ms single-threaded (``bench/bench_detectors_throughput.py``)."""
    import cv2

    cv2.setNumThreads(1)


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()
    single_threaded_opencv()
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    from broker.bus import BusUnavailable
    from broker.leases import ClusterMismatch
    from citywall.learning_cli import LearningCommandError
    from detectors.models import ModelError
    from wall.exposure import ExposureError

    try:
        return args.func(args)
    except (ConfigError, BusUnavailable, ClusterMismatch, ModelError, ExposureError, LearningCommandError) as exc:
        # The messages already name the key / the redacted URL.
        print(f"citywall: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
