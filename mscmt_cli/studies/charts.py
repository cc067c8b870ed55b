"""The study chart (per-type test F1 per row, and validation F1 per epoch per row) and the seed chart (a score per seed of each cell)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mscmt_cli.paths import save_figure
from mscmt_cli.studies.common import RowResult
from mscmt_cli.studies.tables import scored_types

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def study_chart(results: list[RowResult], path: Path, title: str) -> Path:
    """Write a PNG with two panels and return its path.

    Left: grouped bars, one group per row, one bar per entity type (test F1,
    percent, on each row's evaluation corpus). Right: validation weighted F1
    (percent) per epoch, one line per row, from each run's ``metrics.jsonl``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # a Figure on an Agg canvas: no pyplot, no global backend switch, nothing left open
    fig = Figure(figsize=(max(12.0, 1.1 * len(results) + 8.0), 5.0))
    FigureCanvasAgg(fig)
    bars, curves = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(1.0, len(results) / 3), 1.0]})
    _type_bars(bars, results)
    _valid_curves(curves, results)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=110)
    return path


def _type_bars(ax, results: list[RowResult]) -> None:
    types = scored_types([r.test for r in results])
    n_types = max(1, len(types))
    width = 0.8 / n_types
    for k, etype in enumerate(types):
        xs = [i + (k - (n_types - 1) / 2) * width for i in range(len(results))]
        ys = [100.0 * r.test["types"].get(etype, {}).get("f1", 0.0) for r in results]
        ax.bar_label(ax.bar(xs, ys, width, label=etype), fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(
        range(len(results)),
        [r.row.shown for r in results],
        rotation=15 if len(results) > 3 else 0,
        ha="right" if len(results) > 3 else "center",
    )
    ax.set_ylabel("test F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("per-type test F1 (each row's test corpus)")
    ax.legend(title="type", fontsize="small")
    ax.grid(axis="y", alpha=0.3)


def _valid_curves(ax, results: list[RowResult]) -> None:
    for r in results:
        epochs = [m["epoch"] for m in r.metrics]
        ax.plot(epochs, [100.0 * m["valid_weighted_f1"] for m in r.metrics], marker="o", label=r.row.shown)
    last = max((m["epoch"] for r in results for m in r.metrics), default=1)
    ax.set_xlim(0.5, last + 0.5)
    ax.set_xticks(range(1, last + 1, max(1, last // 10)))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation weighted F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("validation weighted F1 per epoch (training corpus)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def seed_figure(
    panels: Mapping[str, Mapping[str, Sequence[float]]], title: str, ylabel: str, subtitle: str, order: Sequence[str] = ()
) -> Figure:
    """A figure of one panel per key of ``panels`` (side by side), to save with :func:`mscmt_cli.paths.save_figure`.

    A panel maps each cell's name to its values (percent, one per seed) and
    shows them as a dot plot: a diamond at the mean with a sample-std error bar
    (none for one seed) and one dot per seed beside it, the y axis spanning the
    values (it does not start at zero). Cells without values are left out; a
    panel without any says "no finished run". A cell has the same colour in
    every panel: its place in ``order`` (else in the panels, first seen first).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours = list(dict.fromkeys([*order, *(name for cells in panels.values() for name in cells)]))
    fig = Figure(figsize=(6.5 * len(panels), 5.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, all_cells) in zip(axes, panels.items()):
        cells = {name: list(values) for name, values in all_cells.items() if values}
        if not cells:
            ax.set_title(f"{panel}: no finished run")
            continue
        for i, (name, values) in enumerate(cells.items()):
            err = statistics.stdev(values) if len(values) > 1 else 0.0
            colour = f"C{colours.index(name) % 10}"
            ax.errorbar(i, statistics.mean(values), yerr=err, fmt="D", markersize=9, capsize=8, color=colour)
            ax.plot([i + 0.12] * len(values), values, "k.", markersize=7)
        ax.set_xticks(range(len(cells)), list(cells), rotation=25, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(cells) - 0.5)
        every = [v for values in cells.values() for v in values]
        ax.set_ylim(max(0.0, min(every) - 5), min(100.0, max(every) + 3))
        ax.set_ylabel(ylabel)
        ax.set_title(f"{panel}: {subtitle}")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
