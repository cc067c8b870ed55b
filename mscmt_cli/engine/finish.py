"""After training: reload the best epoch, score it on the test split, report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mscmt_cli.engine.data import encode_split
from mscmt_cli.engine.evaluate import evaluate
from mscmt_cli.engine.report import scores_table
from mscmt_cli.engine.rundir import TEST_SCORES, write_json
from mscmt_cli.labels import LABELS
from mscmt_cli.model.build import WEIGHTS_FILE, load_weights

if TYPE_CHECKING:
    from mscmt_cli.engine.trainer import TrainOutcome


def finish_run(run) -> "TrainOutcome":
    """Score the best epoch of a finished ``Run`` on the test split and report it."""
    from mscmt_cli.engine.trainer import TrainOutcome

    s, state = run.settings, run.state
    load_weights(run.model, Path(run.run_dir) / "model" / WEIGHTS_FILE)
    run.model.to(run.device)
    test_set = encode_split(run.data.test, run.model.text, run.features, list(LABELS))
    gold = [t.tags for t in run.data.test.tweets]
    test = evaluate(run.model, test_set, gold, LABELS, s.eval_batch_size, run.device)
    best_valid = next((m for m in state.metrics if m["epoch"] == state.best_epoch), {})
    if run.dist.is_main:
        write_json(Path(run.run_dir) / TEST_SCORES, {"corpus": s.corpus, "split": "test", "best_epoch": state.best_epoch, **test})
    run.console.print(scores_table(test, f"{s.corpus} test (best epoch {state.best_epoch})"))
    note = getattr(run.features.source, "report", lambda: None)()
    if note:
        run.console.print(f"[yellow]warning:[/] {note}")
    return TrainOutcome(Path(run.run_dir), state.best_epoch, best_valid, test, state.metrics)
