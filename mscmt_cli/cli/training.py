"""``mscmt train`` and ``mscmt evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mscmt_cli.cli.options import EVALUATE, TRAIN, Given, settings_options


@settings_options(*TRAIN)
def train(
    given: Given, resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory from its last epoch")
) -> None:
    """Train a model; the best epoch (validation weighted F1) is saved in OUT/model."""
    from mscmt_cli.engine.rundir import resumed_settings
    from mscmt_cli.engine.trainer import train as run_training

    if resume is None:
        run_training(given.settings())
    else:
        run_training(resumed_settings(resume, given.values, given.config, given.flags), resume=True)


@settings_options(*EVALUATE)
def evaluate(
    given: Given,
    run_dir: Path = typer.Argument(..., help="run directory (or model directory) to evaluate"),
    split: str = typer.Option("test", "--split", help="train, valid or test"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the scores as JSON"),
) -> None:
    """Score a trained model on a split (seqeval, conlleval-compatible spans): P, R and F1 per type and averaged.

    The corpus, data and images directories and captions default to those the run recorded in its run.json.
    """
    from mscmt_cli.engine.evaluation_job import run_evaluate
    from mscmt_cli.engine.rundir import recorded_data

    run_evaluate(run_dir, given.settings(under=recorded_data(run_dir)), split, json_out=json_out, also_reads=given.reads)
