"""``mscmt grid``: one model per (learning rate x batch size) cell, the paper's Table III.

The paper searched lr {1e-5, 3e-5, 5e-5} x batch size {8, 16, 32} and picked
the cell on the test set. Here the best cell is the one with the highest
validation weighted F1 (first cell on ties); its test scores are reported.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from mscmt_cli.errors import MscmtError
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings
from mscmt_cli.studies.common import Row, RowResult, RowRunner
from mscmt_cli.studies.results import StudyOutcome, run_study
from mscmt_cli.studies.tables import Column, StudyTable, prf

DEFAULT_LRS = "1e-5,3e-5,5e-5"
DEFAULT_BATCH_SIZES = "8,16,32"
SELECTION_NOTE = (
    "best cell chosen on validation weighted F1; its test scores are reported "
    "(the paper picked the cell on the test set, which we do not copy)"
)


def parse_list(text: str, option: str, kind: type) -> list:
    """``"3e-5,5e-5"`` -> ``[3e-05, 5e-05]``: positive values, no repeats."""
    values = []
    for item in (part.strip() for part in str(text).split(",")):
        try:
            value = kind(item)
        except ValueError:
            raise MscmtError(
                f"{option}: {item!r} is not {'an integer' if kind is int else 'a number'} (expected a comma list, e.g. {option} {DEFAULT_LRS if kind is float else DEFAULT_BATCH_SIZES})"
            ) from None
        if value <= 0 or (kind is float and value > 1):
            raise MscmtError(f"{option}: {item} is out of range ({'0 < lr <= 1' if kind is float else 'at least 1'})")
        if value in values:
            raise MscmtError(f"{option}: {item} is given twice")
        values.append(value)
    return values


def grid_rows(lrs: list[float], batch_sizes: list[int]) -> list[Row]:
    """One row per cell, learning rate major: ``lr3e-05-bs8``, ..."""
    return [Row(f"lr{lr:g}-bs{bs}", {"lr": lr, "batch_size": bs}, label=f"lr={lr:g}, batch size={bs}") for lr in lrs for bs in batch_sizes]


def best_index(results: list[RowResult]) -> int:
    """The cell with the highest validation weighted F1 (the first one on ties)."""
    return max(range(len(results)), key=lambda i: (results[i].valid_f1, -i))


def grid_table(results: list[RowResult], best: int) -> StudyTable:
    """Table III: configuration, validation F1, test P/R/F1 (weighted), best mark."""
    columns = [
        Column("Configuration", ""),
        Column("Valid F1"),
        Column("Precision"),
        Column("Recall"),
        Column("F1 Score"),
        Column("Best", ""),
    ]
    rows = [[r.row.shown, round(100 * r.valid_f1, 2), *prf(r.test["weighted"]), "best" if i == best else ""] for i, r in enumerate(results)]
    corpus = results[0].eval_corpus if results else ""
    notes = [f"weighted averages over entity types, in percent; test split of {corpus}", SELECTION_NOTE]
    return StudyTable("Table III: learning rate x batch size", columns, rows, notes)


def grid_summary(results: list[RowResult], console: Console) -> tuple[StudyTable, dict[str, Any]]:
    """Table III with the best cell marked; the cell is printed and named in ``results.json``."""
    best = best_index(results)
    console.print(f"best cell: {results[best].row.shown} (validation weighted F1 {100 * results[best].valid_f1:.2f})")
    return grid_table(results, best), {"selection": SELECTION_NOTE, "best": results[best].row.name}


def run_grid(
    settings: Settings,
    lrs: str = DEFAULT_LRS,
    batch_sizes: str = DEFAULT_BATCH_SIZES,
    registry: Registry | None = None,
    console: Console | None = None,
    runner: RowRunner | None = None,
) -> StudyOutcome:
    """Train every cell (skipping finished ones), choose the best on validation, write the results."""
    rows = grid_rows(parse_list(lrs, "--lrs", float), parse_list(batch_sizes, "--batch-sizes", int))
    return run_study("grid", settings, rows, grid_summary, registry, console, runner)
