"""Rich progress bars and tables on stderr (stdout stays clean for data)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def quiet_transformers() -> None:
    """No per-load progress bars or info logs from transformers and the hub: our own progress bars replace them
    (the CLI calls it first; the benchmarks too)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def make_console(quiet: bool = False) -> Console:
    """A console on stderr (``quiet`` prints nothing, e.g. on non-zero DDP ranks).

    No emoji codes: rich would print ``in.jsonl:100: ...`` (a bad line's report) as ``in.jsonl💯 ...``.
    """
    return Console(stderr=True, highlight=False, quiet=quiet, emoji=False)


@contextmanager
def progress(console: Console, enabled: bool = True) -> Iterator[Progress]:
    """A progress display; hidden when disabled or when stderr is not a terminal."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled or not sys.stderr.isatty(),
        transient=False,
    )
    with bar:
        yield bar
