"""Run the command line with ``python -m taskq``."""

from taskq.cli import main

main()
