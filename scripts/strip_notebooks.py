"""Strip outputs from notebooks, or check that they carry none (``--check``).

Notebooks are committed without outputs, execution counts or saved widget state, so diffs show
only what an author changed and no run leaks data into the repository. Usage::

    python scripts/strip_notebooks.py            # strip every notebooks/*.ipynb in place
    python scripts/strip_notebooks.py --check    # list offenders, exit 1 if there are any
    python scripts/strip_notebooks.py a.ipynb    # only the named files
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# Notebook-level metadata a run leaves behind; the kernelspec and language_info stay.
VOLATILE_METADATA = ("widgets", "execution", "toc", "varInspector")


def notebook_paths(paths: list[str] | None = None) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def output_problems(path: Path) -> list[str]:
    """Describe every output, execution count and saved widget state in one notebook."""
    notebook = nbformat.read(path, as_version=4)
    problems = [f"{path.name}: notebook metadata {key!r} is saved"
                for key in VOLATILE_METADATA if key in notebook.metadata]
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"{path.name}: cell {index} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"{path.name}: cell {index} has execution_count "
                            f"{cell.execution_count}")
    return problems


def strip(path: Path) -> bool:
    """Remove outputs, execution counts and saved widget state; returns True if it changed."""
    if not output_problems(path):
        return False
    notebook = nbformat.read(path, as_version=4)
    for key in VOLATILE_METADATA:
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(notebook, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="only list outputs and exit 1 when a notebook has any")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.paths)
    if args.check:
        problems = [p for path in paths for p in output_problems(path)]
        for problem in problems:
            print(problem)
        if problems:
            print("strip them with: python scripts/strip_notebooks.py", file=sys.stderr)
        return 1 if problems else 0
    for path in paths:
        if strip(path):
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
