"""Drivers: one module per queue system, run in subprocesses by the harness."""
