"""Run one driver role: ``python -m benchmarks.peers SYSTEM ROLE [options]``.

The driver module is imported under its package name, never as ``__main__``,
so that task functions have the import path a worker can resolve.
"""

import importlib
import sys

from benchmarks.peers.common import driver_main


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m benchmarks.peers SYSTEM ROLE [options]", file=sys.stderr)
        return 2
    system = sys.argv[1]
    module = importlib.import_module(f"benchmarks.peers.{system}_driver")
    return driver_main(module.DRIVER, sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
