"""The README's two commands stay true: CI runs the same test command the README shows."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_readme_test_command() -> None:
    """The test command in the README appears verbatim in .ci/run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [c for c in _bash_blocks(readme) if "pytest" in c]
    assert len(commands) == 1
    assert commands[0] in ci_script


def test_readme_main_command_uses_fresh_venv() -> None:
    """The main-job command creates its own virtual environment and starts taskq."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = _bash_blocks(readme)[0]
    assert first.startswith("python3 -m venv .venv")
    assert ".venv/bin/taskq" in first
