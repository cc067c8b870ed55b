"""The paper's studies: ``mscmt grid``, ``mscmt ablate`` and ``mscmt crossdata``.

Every ``mscmt train`` option passes through, except those a study sets per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mscmt_cli.cli.options import TRAIN, Given, settings_options

STUDY_OUT_HELP = (
    "study directory: one run per row, results.json/csv, report.md, chart.png; run again with the same --out to finish an interrupted study"
)


def _without(*names: str) -> tuple[str, ...]:
    return tuple(n for n in TRAIN if n not in names + ("out",))


@settings_options(*_without("lr", "batch_size"))
def grid(
    given: Given,
    lrs: str = typer.Option("1e-5,3e-5,5e-5", "--lrs", help="learning rates, comma separated"),
    batch_sizes: str = typer.Option("8,16,32", "--batch-sizes", help="batch sizes, comma separated"),
    out: Optional[Path] = typer.Option(None, "--out", help=STUDY_OUT_HELP),
) -> None:
    """Train one model per (learning rate x batch size) cell; the best on validation weighted F1 is reported (Table III)."""
    from mscmt_cli.studies.grid import run_grid

    run_grid(given.settings(out=out), lrs, batch_sizes)


@settings_options(*_without("text", "image", "fusion", "decoder"))
def ablate(
    given: Given,
    variant: Optional[list[str]] = typer.Option(
        None,
        "--variant",
        help="NAME=text,image,fusion,decoder (repeatable); replaces "
        "the paper's V1=bert-base,clip-vit-l14,additive,crf V2=bert-base,clip-vit-l14,gated,crf "
        "full=bertweet,clip-vit-l14,gated,crf",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help=STUDY_OUT_HELP),
) -> None:
    """Train model variants on the same data and seed; per-type scores and differences to the full model (Table V)."""
    from mscmt_cli.studies.ablate import run_ablate

    run_ablate(given.settings(out=out), variant)


@settings_options(*_without("corpus"))
def crossdata(
    given: Given,
    first: str = typer.Argument(..., help="corpus A (2015, twitter2017, or any corpus directory name)"),
    second: str = typer.Argument(..., help="corpus B"),
    out: Optional[Path] = typer.Option(None, "--out", help=STUDY_OUT_HELP),
) -> None:
    """Train on A and test on B, the reverse, and train and test on A + B merged (Table VI)."""
    from mscmt_cli.studies.crossdata import run_crossdata

    run_crossdata(given.settings(out=out), first, second)
