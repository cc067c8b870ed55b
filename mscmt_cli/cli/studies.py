"""The paper's studies: ``mscmt grid``, ``mscmt ablate`` and ``mscmt crossdata``.

Every ``mscmt train`` option passes through, except those a study sets per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mscmt_cli.cli.options import TRAIN, Given, settings_options
from mscmt_cli.errors import MscmtError

STUDY_OUT_HELP = (
    "study directory: one run per row, results.json/csv, report.md, chart.png; run again with the same --out to finish an interrupted study"
)


def _without(*names: str) -> tuple[str, ...]:
    return tuple(n for n in TRAIN if n not in names + ("out",))


def _ray_option() -> Any:
    from mscmt_cli.cluster.connect import ADDRESS_HELP

    return typer.Option(None, "--ray", help=f'{ADDRESS_HELP}; each row is its own task (pip install "mscmt[ray]")')


def _gpus_option() -> Any:
    return typer.Option(
        None, "--gpus-per-row", min=0.0, help="GPUs each row's task asks for, with --ray (default: 1 when the cluster has GPUs, else 0)"
    )


def _runner(address: Optional[str], gpus_per_row: Optional[float]) -> Any:
    """Where the rows train: here (None), or on the Ray cluster at ``address``."""
    if address is None:
        if gpus_per_row is not None:
            raise MscmtError("--gpus-per-row needs --ray ADDRESS")
        return None
    from mscmt_cli.cluster.rows import RayRows

    return RayRows(address, gpus_per_row)


@settings_options(*_without("lr", "batch_size"))
def grid(
    given: Given,
    lrs: str = typer.Option("1e-5,3e-5,5e-5", "--lrs", help="learning rates, comma separated"),
    batch_sizes: str = typer.Option("8,16,32", "--batch-sizes", help="batch sizes, comma separated"),
    out: Optional[Path] = typer.Option(None, "--out", help=STUDY_OUT_HELP),
    ray: Optional[str] = _ray_option(),
    gpus_per_row: Optional[float] = _gpus_option(),
) -> None:
    """Train one model per (learning rate x batch size) cell; the best on validation weighted F1 is reported (Table III)."""
    from mscmt_cli.studies.grid import run_grid

    run_grid(given.settings(out=out), lrs, batch_sizes, runner=_runner(ray, gpus_per_row))


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
    ray: Optional[str] = _ray_option(),
    gpus_per_row: Optional[float] = _gpus_option(),
) -> None:
    """Train model variants on the same data and seed; per-type scores and differences to the full model (Table V)."""
    from mscmt_cli.studies.ablate import run_ablate

    run_ablate(given.settings(out=out), variant, runner=_runner(ray, gpus_per_row))


@settings_options(*_without("corpus"))
def crossdata(
    given: Given,
    first: str = typer.Argument(..., help="corpus A (2015, twitter2017, any corpus directory name, or a corpus directory by path: ./mine)"),
    second: str = typer.Argument(..., help="corpus B"),
    out: Optional[Path] = typer.Option(None, "--out", help=STUDY_OUT_HELP),
    ray: Optional[str] = _ray_option(),
    gpus_per_row: Optional[float] = _gpus_option(),
) -> None:
    """Train on A and test on B, the reverse, and train and test on A + B merged (Table VI)."""
    from mscmt_cli.studies.crossdata import run_crossdata

    run_crossdata(given.settings(out=out), first, second, runner=_runner(ray, gpus_per_row))
