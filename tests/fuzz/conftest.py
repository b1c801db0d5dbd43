"""The figures summary of the fuzz tests (how many bad inputs were tried)."""

from typing import Any

from tests.cases.figures import write_summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_summary(terminalreporter)
