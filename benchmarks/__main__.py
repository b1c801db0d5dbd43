"""Command line: ``python -m benchmarks [--quick] [--systems a,b] [--runs N] [--out DIR]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from benchmarks.redis_server import REDIS_SERVER_DEFAULT
from benchmarks.systems import SYSTEMS

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _python_option(text: str) -> tuple[str, str]:
    system, sep, path = text.partition("=")
    if not sep or system not in SYSTEMS or not path:
        raise argparse.ArgumentTypeError(
            f"expected SYSTEM=PATH with SYSTEM one of {', '.join(SYSTEMS)}, got {text!r}"
        )
    return system, path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark taskq against other Python task queues on a private Redis server.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny task counts and short phases, for a smoke run (figures are not meaningful)",
    )
    parser.add_argument(
        "--systems",
        type=lambda text: [name for name in text.split(",") if name],
        help=f"comma-separated subset of: {', '.join(SYSTEMS)} (default: all)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per figure; the median is reported (default: 3)"
    )
    parser.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="directory for <date>.json, <date>.md and the PNG charts "
        "(default: benchmarks/results)",
    )
    parser.add_argument(
        "--python",
        type=_python_option,
        action="append",
        metavar="SYSTEM=PATH",
        help="interpreter for one system's producers and workers, for a peer installed in "
        "its own virtualenv (repeatable)",
    )
    parser.add_argument(
        "--redis-server", default=REDIS_SERVER_DEFAULT, help="redis-server binary to start"
    )
    parser.add_argument(
        "--skip-growth",
        action="store_true",
        help="skip taskq's depth-growth and promoter-cost phases",
    )
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep worker logs and record files"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from benchmarks.harness import run

    path = run(args)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
