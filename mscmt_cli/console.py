"""Progress and tables on stderr (stdout stays clean for data).

:func:`progress` is the one progress display of every command: a rich bar on a
terminal, and where stderr is not a terminal (``2>log``, nohup, CI, a Ray
worker) a plain line at most every ``every`` seconds, as HF Trainer and tqdm
print into logs::

    epoch 1/3 350/1054 steps loss 0.4213 2.1 steps/s eta 5m36s
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def quiet_libraries() -> None:
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


class ProgressDisplay(Protocol):
    """What callers of :func:`progress` use: rich's ``Progress`` and :class:`PlainProgress` both have it."""

    def add_task(self, description: str, *, total: float | None = ..., unit: str, info: str = ..., **fields: Any) -> Any: ...

    def update(self, task_id: Any, *, completed: float | None = ..., advance: float | None = ..., **fields: Any) -> None: ...

    def advance(self, task_id: Any, advance: float = ...) -> None: ...


@dataclass
class _Task:
    description: str
    total: float | None
    unit: str
    info: str
    started: float
    completed: float = 0.0


class PlainProgress:
    """Progress as plain lines on ``console``, one at most every ``every`` seconds of ``clock`` (0: at every update)."""

    def __init__(self, console: Console, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.every, self.clock = console, every, clock
        self.tasks: list[_Task] = []
        self.last_line = clock()

    def add_task(self, description: str, *, total: float | None = None, unit: str, info: str = "", **fields: Any) -> int:
        """A new task (its id); ``unit`` names what is counted (``steps``), ``info`` is shown after the count."""
        self.tasks.append(_Task(description, total, unit, info, self.clock()))
        return len(self.tasks) - 1

    def update(
        self, task_id: int, *, completed: float | None = None, advance: float | None = None, info: str | None = None, **fields: Any
    ) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if info is not None:
            task.info = info
        now = self.clock()
        if now - self.last_line >= self.every:
            self.last_line = now
            self.console.print(plain_line(task, now), markup=False, highlight=False, soft_wrap=True)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)


def plain_line(task: _Task, now: float) -> str:
    """``epoch 1/3 350/1054 steps loss 0.4213 2.1 steps/s eta 5m36s`` (no total: no eta; nothing done yet: no rate)."""
    count = f"{_number(task.completed)}/{_number(task.total)}" if task.total is not None else _number(task.completed)
    parts = [task.description, f"{count} {task.unit}", task.info]
    elapsed = now - task.started
    if task.completed > 0 and elapsed > 0:
        rate = task.completed / elapsed
        parts.append(f"{rate:.0f} {task.unit}/s" if rate >= 100 else f"{rate:.2g} {task.unit}/s")
        if task.total is not None:
            parts.append(f"eta {duration(max(0.0, task.total - task.completed) / rate)}")
    return " ".join(p for p in parts if p)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def duration(seconds: float) -> str:
    """``45s``, ``5m36s``, ``2h05m`` (rounded up to the second)."""
    s = math.ceil(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@contextmanager
def progress(console: Console, every: float, enabled: bool = True) -> Iterator[ProgressDisplay]:
    """The progress display: a rich bar on a terminal, else a plain line at most every ``every`` seconds; nothing when
    not ``enabled`` (or on a quiet console)."""
    if console.is_terminal or not enabled:
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]} {task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        with bar:
            yield bar
    else:
        yield PlainProgress(console, every)
