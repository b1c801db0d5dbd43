"""Write the OpenAPI document: ``python -m taskq.api [PATH]`` (default docs/openapi.json).

``--check`` exits 1 when the file differs from what the code generates, for CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from taskq.api import openapi_json

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_PATH
    text = openapi_json()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m taskq.api {path}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
