"""Score tables as the paper prints them (Table IV layout), for the terminal."""

from __future__ import annotations

from rich.table import Table


def scores_table(scores: dict, title: str) -> Table:
    """Per-type P/R/F1/support, then micro and weighted averages, in percent."""
    table = Table(title=title)
    for col in ("type", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "type" else "right")
    rows = list(scores["types"].items()) + [("micro avg", scores["micro"]), ("weighted avg", scores["weighted"])]
    for name, row in rows:
        table.add_row(
            name,
            f"{100 * row['precision']:.2f}",
            f"{100 * row['recall']:.2f}",
            f"{100 * row['f1']:.2f}",
            str(row.get("support", "")),
            end_section=name == list(scores["types"])[-1],
        )
    return table
