"""Benchmarks of taskq against other Python task queues; run ``python -m benchmarks --help``."""
