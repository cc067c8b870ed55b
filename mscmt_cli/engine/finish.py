"""After training: reload the best epoch, score it on the test split, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console

from mscmt_cli.engine.data import CorpusData, TweetReader
from mscmt_cli.engine.distributed import DistContext
from mscmt_cli.engine.evaluate import evaluate
from mscmt_cli.engine.report import scores_table
from mscmt_cli.engine.rundir import TEST_SCORES, write_json
from mscmt_cli.model.build import WEIGHTS_FILE, load_weights
from mscmt_cli.model.mner import MNERModel
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.tagger import Tagger


@dataclass
class TrainOutcome:
    """Where the run is and how it scored."""

    run_dir: Path
    best_epoch: int
    best_valid: dict[str, Any]
    test: dict[str, Any]
    metrics: list[dict[str, Any]]


class TrainingProgress(Protocol):
    """The early-stopping state :func:`finish_run` reads."""

    @property
    def best_epoch(self) -> int: ...

    @property
    def metrics(self) -> list[dict[str, Any]]: ...


class FinishedRun(Protocol):
    """What :func:`finish_run` reads of a training run (the trainer's ``Run``); read-only, so any run type fits."""

    @property
    def settings(self) -> Settings: ...
    @property
    def run_dir(self) -> Path: ...
    @property
    def model(self) -> MNERModel: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def data(self) -> CorpusData: ...
    @property
    def labels(self) -> tuple[str, ...]: ...
    @property
    def reader(self) -> TweetReader: ...
    @property
    def dist(self) -> DistContext: ...
    @property
    def console(self) -> Console: ...
    @property
    def state(self) -> TrainingProgress: ...

    def tagger(self) -> Tagger:
        """The run's model (its best epoch once reloaded) as a :class:`Tagger` on the run's device."""
        ...


def finish_run(run: FinishedRun) -> TrainOutcome:
    """Score the best epoch of a finished run on the test split (when there is one) and report it."""
    s, state = run.settings, run.state
    best_valid = next((m for m in state.metrics if m["epoch"] == state.best_epoch), {})
    test: dict[str, Any] = {}
    if run.data.test is not None:
        load_weights(run.model, Path(run.run_dir) / "model" / WEIGHTS_FILE)
        run.model.to(run.device)
        test_set = run.reader.encode(run.data.test, run.model.text, run.labels)
        test = evaluate(run.tagger(), run.data.test.tweets, test_set)
        if run.dist.is_main:
            record = {
                "corpus": s.corpus if s.train_file is None else run.data.name,
                "split": "test",
                "best_epoch": state.best_epoch,
                **test,
            }
            write_json(Path(run.run_dir) / TEST_SCORES, record)
        run.console.print(scores_table(test, f"{run.data.test.corpus} test (best epoch {state.best_epoch})"))
    else:
        run.console.print(f"best epoch {state.best_epoch} saved in {Path(run.run_dir) / 'model'}; no test split (--test FILE scores one)")
    for note in run.reader.reports():
        run.console.print(f"[yellow]warning:[/] {note}")
    return TrainOutcome(Path(run.run_dir), state.best_epoch, best_valid, test, state.metrics)
