"""A study's rows as Ray tasks: ``mscmt grid|ablate|crossdata ... --ray ADDRESS``.

Each row is one task running :func:`~mscmt_cli.studies.common.train_or_skip`
and :func:`~mscmt_cli.studies.common.collect` through
:func:`~mscmt_cli.studies.common.run_row`, the function a one-machine study
calls: it writes the row's ordinary run directory under ``--out``, skips a
finished row and resumes an interrupted one from its checkpoint. The driver
only waits, reports each row as it ends (a failed row with its error; the
others go on), and then reads every row from its run directory, so the
study's result files are written by the one-machine code.

A task asks for one CPU and ``--gpus-per-row`` GPUs (default: 1 when the
cluster has GPUs, else 0), and runs in a fresh worker process, so no row
inherits another's memory or state. Ray retries a task whose worker died (a node
lost, killed for memory): the retry resumes the row from its last finished
epoch, as a rerun of the study would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mscmt_cli.cluster.connect import check_address, connected, gpus_per_task, require_ray, task_error, worker_settings
from mscmt_cli.console import progress
from mscmt_cli.errors import MscmtError
from mscmt_cli.settings import Settings
from mscmt_cli.studies.common import Row, run_row


def train_row_task(row: Row, settings: Settings, out: Path) -> bool:
    """On a worker: the row through :func:`run_row`, exactly as on one machine; whether it was trained now."""
    from mscmt_cli.console import make_console
    from mscmt_cli.registry import Registry

    return run_row(row, settings, Registry.from_entry_points(), make_console(), out).trained_now


@dataclass
class RayRows:
    """A :class:`~mscmt_cli.studies.common.RowRunner` that trains every row as its own Ray task.

    Attributes:
        address: the cluster (``local``, ``auto``, ``ray://HOST:PORT``, ``HOST:PORT``).
        gpus_per_row: GPUs per task; None for 1 when the cluster has GPUs, else 0.
    """

    address: str
    gpus_per_row: float | None = None

    def __post_init__(self) -> None:
        require_ray()  # before anything is checked or trained: say at once how to install it
        self.address = check_address(self.address)

    def train_rows(self, jobs: list[tuple[Row, Settings]], out: Path, console: Console) -> list[bool]:
        """Train every row on the cluster; whether each was trained now (in ``jobs`` order)."""
        with connected(self.address) as ray:
            gpus = gpus_per_task(ray, self.gpus_per_row, "--gpus-per-row")
            shipped = [worker_settings(settings, gpus, "--gpus-per-row") for _, settings in jobs]
            task = ray.remote(num_cpus=1, num_gpus=gpus, max_calls=1)(train_row_task)  # a fresh process per row
            console.print(f"{len(jobs)} row(s) on the Ray cluster at {self.address}, {gpus:g} GPU(s) each")
            refs = [task.remote(row, settings, Path(out).absolute()) for (row, _), settings in zip(jobs, shipped)]
            every = min(settings.progress_every for _, settings in jobs) if jobs else 0.0
            outcome = _wait(ray, refs, [row for row, _ in jobs], console, every, out)
        failed = [row.name for row, _ in jobs if isinstance(outcome[row.name], str)]
        if failed:
            raise MscmtError(
                f"{len(failed)} of {len(jobs)} rows failed ({', '.join(failed)}; errors above); the other rows are finished "
                f"and kept: run the same command with --out {out} to train the failed ones"
            )
        return [bool(outcome[row.name]) for row, _ in jobs]


def _wait(ray: Any, refs: list[Any], rows: list[Row], console: Console, progress_every: float, out: Path) -> dict[str, bool | str]:
    """Each row's outcome as its task ends: whether it was trained now, or its error (a string)."""
    outcome: dict[str, bool | str] = {}
    row_of = dict(zip(refs, rows))
    pending = list(refs)
    with progress(console, progress_every) as bar:
        shown = bar.add_task("rows", total=len(rows), unit="rows", info="")
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    row = row_of[ref]
                    outcome[row.name] = _outcome(ray, ref, row, console)
                failures = sum(isinstance(v, str) for v in outcome.values())
                bar.update(shown, completed=len(outcome), info=f"{failures} failed" if failures else "")
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            raise MscmtError(
                f"interrupted with {len(pending)} row(s) unfinished; run the same command with --out {out} to finish them"
            ) from None
    return outcome


def _outcome(ray: Any, ref: Any, row: Row, console: Console) -> bool | str:
    try:
        trained_now = bool(ray.get(ref))
    except Exception as err:  # the row's own error, or Ray's (worker lost): reported, and the other rows go on
        message = task_error(err).removeprefix(f"row {row.name}: ")
        console.print(f"{row.name}: failed: {message}", markup=False, highlight=False, soft_wrap=True)
        return message
    console.print(f"{row.name}: {'trained' if trained_now else 'already finished, skipped'}", markup=False, highlight=False)
    return trained_now
