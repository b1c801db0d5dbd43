"""Figures the reliability tests measure (tasks run, kills, losses...), printed after the run.

Each test calls ``report`` with its numbers; the ``pytest_terminal_summary`` hooks of the chaos
and fuzz folders print them under "reliability figures", so one pytest run shows them all.
"""

from __future__ import annotations

from typing import Any

_FIGURES: list[tuple[str, dict[str, Any]]] = []


def report(test: str, **numbers: Any) -> None:
    """Keep one test's figures for the summary at the end of the session."""
    _FIGURES.append((test, numbers))


def write_summary(terminalreporter: Any) -> None:
    """Print and forget the figures gathered so far (safe to call from several hooks)."""
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test, numbers in _FIGURES:
        shown = " ".join(f"{key}={value}" for key, value in numbers.items())
        terminalreporter.write_line(f"{test}: {shown}")
    _FIGURES.clear()
