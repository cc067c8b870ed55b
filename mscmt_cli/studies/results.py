"""A study's end: its rows trained (:func:`run_study`) and its results written: ``results.json``, ``results.csv``, ``report.md``, ``chart.png``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from mscmt_cli.data.corpus import canonical_name
from mscmt_cli.engine.rundir import write_json, write_text_atomic
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings, required_path
from mscmt_cli.studies.charts import study_chart
from mscmt_cli.studies.common import PARTS, STUDY_FILES, Row, RowResult, RowRunner, run_rows
from mscmt_cli.studies.tables import StudyTable, markdown_table

FILES = STUDY_FILES[:4]  # results.json, results.csv, report.md, chart.png


@dataclass
class StudyOutcome:
    """What a study produced: its table, rows, extra facts (best cell, reference row) and files."""

    study: str
    table: StudyTable
    results: list[RowResult]
    extra: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def row_record(result: RowResult, out: Path) -> dict[str, Any]:
    """One row for ``results.json`` (scores as fractions, as in ``test_scores.json``)."""
    return {
        "name": result.row.name,
        "label": result.row.shown,
        "run_dir": os.path.relpath(result.run_dir, out),
        "overrides": {k: str(v) if isinstance(v, Path) else v for k, v in result.row.overrides.items()},
        "components": {k: getattr(result.settings, k) for k in PARTS},
        "train_corpus": canonical_name(result.settings.corpus),
        "eval_corpus": result.eval_corpus,
        "trained_now": result.trained_now,
        "best_epoch": result.best_epoch,
        "valid_weighted_f1": result.valid_f1,
        "valid": result.valid,
        "test": {k: result.test[k] for k in ("micro", "weighted", "types")},
        "epochs": result.metrics,
    }


def markdown_report(outcome: StudyOutcome, records: list[dict[str, Any]]) -> str:
    """The table as the paper lays it out, the runs behind it (``records``: :func:`row_record` of each row) and the chart."""
    header = ["row", "run directory", "components", "train corpus", "test corpus", "best epoch", "valid weighted F1"]
    runs = [
        [
            r.row.shown,
            rec["run_dir"],
            " + ".join(rec["components"].values()),
            rec["train_corpus"],
            rec["eval_corpus"],
            str(r.best_epoch),
            f"{100 * r.valid_f1:.2f}",
        ]
        for r, rec in zip(outcome.results, records)
    ]
    lines = [
        f"# mscmt {outcome.study}",
        "",
        outcome.table.to_markdown(),
        "## Runs",
        "",
        *markdown_table(header, runs, [":---"] * 5 + ["---:"] * 2),
    ]
    return "\n".join(lines + ["", "![per-type test F1 and validation F1 per epoch](chart.png)", ""])


def write_results(outcome: StudyOutcome, out: Path) -> dict[str, Path]:
    """Write the four result files into ``out``; returns their paths by file name."""
    out = Path(out)
    paths = {name: out / name for name in FILES}
    records = [row_record(r, out) for r in outcome.results]
    write_json(paths["results.json"], {"study": outcome.study, **outcome.extra, "table": outcome.table.to_json(), "rows": records})
    write_text_atomic(paths["results.csv"], outcome.table.to_csv())
    write_text_atomic(paths["report.md"], markdown_report(outcome, records))
    study_chart(outcome.results, paths["chart.png"], outcome.table.title)
    return paths


def print_table(table: StudyTable) -> None:
    """The table's brief columns on stdout (the whole table is in report.md and results.csv)."""
    Console(highlight=False).print(table.to_rich())


def finish(outcome: StudyOutcome, out: Path, console: Console) -> StudyOutcome:
    """Write the result files, print the table, say where everything is."""
    outcome.files = write_results(outcome, out)
    print_table(outcome.table)
    trained = sum(r.trained_now for r in outcome.results)
    console.print(
        f"{outcome.study}: {trained} row(s) trained now, {len(outcome.results) - trained} already finished; "
        f"results in {out} ({', '.join(FILES)})"
    )
    return outcome


Summary = Callable[[list[RowResult], Console], tuple[StudyTable, dict[str, Any]]]
"""A study's table and extra facts for ``results.json`` from its rows' results (it may print on the console)."""


def run_study(
    study: str,
    settings: Settings,
    rows: list[Row],
    summary: Summary,
    registry: Registry | None = None,
    console: Console | None = None,
    runner: RowRunner | None = None,
) -> StudyOutcome:
    """Train every row (skipping finished ones; on ``runner`` when given), then write ``summary``'s table and files."""
    from mscmt_cli.console import make_console

    console = console or make_console()
    results = run_rows(settings, rows, registry or Registry.from_entry_points(), console, study, runner)
    table, extra = summary(results, console)
    return finish(StudyOutcome(study, table, results, extra), required_path(settings.out, "--out"), console)
