"""``python benchmarks/<name>.py`` runs as ``python -m benchmarks.<name>``: the scripts are modules of a package.

Run as a file, a script sees ``benchmarks/`` as its first import directory and not
the repository root, so ``benchmarks.common`` is not importable. Its first lines
hand over to :func:`run_as_module`, which replaces the process by the same script
run as a module, with the root of the repository the script lives in importable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def run_as_module(file: str) -> None:
    """Replace this process by ``python -m benchmarks.<name> ARGS`` (same interpreter, arguments and working directory)."""
    path = Path(file).resolve()
    root = str(path.parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    sys.stdout.flush(), sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", f"benchmarks.{path.stem}", *sys.argv[1:]], env)
