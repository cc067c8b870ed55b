"""A study's table, rendered for the terminal (rich), Markdown and CSV; the seed aggregates of the benchmark tables.

Cells are plain values: text, or numbers in percent (scores are fractions in
the results and percentages in tables, as the paper prints them).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

METRICS: tuple[tuple[str, str], ...] = (("precision", "P"), ("recall", "R"), ("f1", "F1"))


@dataclass(frozen=True)
class Column:
    """A column: its header, how its numbers print (``.2f``, ``+.2f``; ``""`` for text) and whether the terminal shows it
    (``brief``; every column is in the report and the CSV)."""

    name: str
    fmt: str = ".2f"
    brief: bool = True


@dataclass
class StudyTable:
    """Title, columns, rows of cells and notes printed under the table."""

    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, column: Column, value: Any) -> str:
        """One cell as text (numbers with the column's format)."""
        if isinstance(value, (int, float)) and column.fmt:
            return format(value, column.fmt)
        return str(value)

    def text_rows(self) -> list[list[str]]:
        return [[self.cell(c, v) for c, v in zip(self.columns, row)] for row in self.rows]

    def to_rich(self) -> Table:
        """The brief columns, for an 80-column terminal; a note says where the others are."""
        shown = [i for i, c in enumerate(self.columns) if c.brief]
        left_out = [] if len(shown) == len(self.columns) else ["the other columns (P, R, ...) are in report.md and results.csv"]
        table = Table(title=self.title, caption="\n".join(self.notes + left_out) or None, caption_justify="left")
        for i in shown:
            table.add_column(self.columns[i].name, justify="right" if self.columns[i].fmt else "left")
        for row in self.text_rows():
            table.add_row(*(row[i] for i in shown))
        return table

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table with the title above and notes below."""
        align = ["---:" if c.fmt else ":---" for c in self.columns]
        lines = [f"## {self.title}", "", *markdown_table([c.name for c in self.columns], self.text_rows(), align)]
        return "\n".join(lines + [""] + [f"{note}  " for note in self.notes]) + "\n"

    def to_csv(self) -> str:
        """Header and rows; numbers rounded to 2 decimals, no formatting signs."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c.name for c in self.columns])
        for row in self.rows:
            writer.writerow([round(v, 4) if isinstance(v, float) else v for v in row])
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": [c.name for c in self.columns], "rows": self.rows, "notes": self.notes}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None) -> list[str]:
    """A GitHub-flavoured Markdown table as lines: the header, the alignment row and the rows, each ``| a | b |``
    with a ``|`` inside a cell escaped. ``align`` gives each column's ``:---`` (left), ``---:`` (right) or ``---``
    (the renderer's default, which is also the default for every column)."""
    return [_md_row(header), _md_row(align if align is not None else ["---"] * len(header)), *(_md_row(row) for row in rows)]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def pct(value: float) -> float:
    """A fraction as a percentage rounded to 2 decimals."""
    return round(100.0 * float(value), 2)


def mean_std(values: list[float], one_seed: str = " (one seed)") -> str:
    """Scores of several seeds (fractions) as ``mean ± std`` in percent, sample std, 2 decimals; one value has no
    spread to report (it is shown followed by ``one_seed``), none is ``—``."""
    if not values:
        return "—"
    percent = [100 * v for v in values]
    if len(percent) == 1:
        return f"{percent[0]:.2f}{one_seed}"
    return f"{statistics.mean(percent):.2f} ± {statistics.stdev(percent):.2f}"


def prf(scores: dict[str, Any]) -> list[float]:
    """Precision, recall and F1 of one scores entry, in percent."""
    return [pct(scores.get(key, 0.0)) for key, _ in METRICS]


def scored_types(scores: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The entity types of test scores, in the order the scores list them (the model's order first)."""
    return tuple(dict.fromkeys(t for s in scores for t in s.get("types", {})))


def type_columns(types: tuple[str, ...]) -> list[Column]:
    """``PER P``, ``PER R``, ``PER F1``, ... for every entity type (the terminal shows the F1 columns)."""
    return [Column(f"{t} {short}", brief=short == "F1") for t in types for _, short in METRICS]


def type_cells(scores: dict[str, Any], types: tuple[str, ...]) -> list[float]:
    """Per-type P, R, F1 (percent) in the order of :func:`type_columns`."""
    empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    return [v for t in types for v in prf(scores["types"].get(t, empty))]


def average_cells(
    runs: Sequence[Mapping[str, Any]], average: str, keys: Sequence[str] = ("precision", "recall", "f1"), one_seed: str = " (one seed)"
) -> list[str]:
    """:func:`mean_std` over seeds of ``keys`` of one average (``micro``, ``weighted``) of test scores, one cell per key
    (a key a run lacks counts as 0)."""
    return [mean_std([float(r[average].get(key, 0.0)) for r in runs], one_seed) for key in keys]


def type_f1_cells(runs: Sequence[Mapping[str, Any]], types: Sequence[str], one_seed: str = " (one seed)") -> list[str]:
    """:func:`mean_std` over seeds of each entity type's test F1, one cell per type (a type a run did not score counts as 0)."""
    return [mean_std([float(r["types"].get(t, {}).get("f1", 0.0)) for r in runs], one_seed) for t in types]


def seed_scores(runs: Mapping[int, Mapping[str, Any]], average: str = "micro", key: str = "f1") -> dict[int, float]:
    """One score of every seed's scores, in seed order: ``{seed: runs[seed][average][key]}``."""
    return {seed: float(runs[seed][average][key]) for seed in sorted(runs)}


@dataclass(frozen=True)
class PairedDeltas:
    """A cell's differences to a reference run with the same seed, in points: ``{seed: cell - reference}``."""

    by_seed: dict[int, float]

    def per_seed(self) -> str:
        """``s1: +1.00, s2: -0.50`` (``—`` when no seed has both)."""
        return ", ".join(f"s{seed}: {d:+.2f}" for seed, d in self.by_seed.items()) or "—"

    def mean(self) -> str:
        """The mean difference, signed, 2 decimals (``—`` when no seed has both)."""
        return f"{statistics.mean(self.by_seed.values()):+.2f}" if self.by_seed else "—"

    @property
    def better(self) -> int:
        """How many seeds the cell beats the reference on."""
        return sum(d > 0 for d in self.by_seed.values())


def paired_deltas(cell: Mapping[int, float], reference: Mapping[int, float]) -> PairedDeltas:
    """Per seed both have (in seed order), ``cell - reference`` of a score (fractions) in points."""
    return PairedDeltas({seed: 100 * (cell[seed] - reference[seed]) for seed in sorted(set(cell) & set(reference))})
