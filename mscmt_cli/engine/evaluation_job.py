"""``mscmt evaluate``: score a saved model on one split of a corpus."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mscmt_cli.data.corpus import load_split
from mscmt_cli.engine.data import check_context_inputs
from mscmt_cli.engine.evaluate import tag_tweets
from mscmt_cli.engine.metrics import score
from mscmt_cli.engine.report import scores_table
from mscmt_cli.engine.rundir import write_json
from mscmt_cli.errors import MscmtError
from mscmt_cli.paths import check_file_target
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.tagger import Tagger, load_backend


def evaluation_tagger(run_dir: Path, settings: Settings, registry: Registry) -> Tagger:
    """The Tagger that scores a split: the model of ``run_dir`` under ``settings.backend`` (``--model-path`` honoured for
    its frozen image encoder), batching as training's evaluation does (``--eval-batch-size`` tweets, no sub-word budget)."""
    assembled, backend = load_backend(run_dir, registry, settings.model_paths, settings.device, settings.backend)
    return Tagger(assembled, settings.device, backend=backend, batch_size=settings.eval_batch_size, max_batch_subwords=None)


def evaluate_run(run_dir: Path, settings: Settings, split: str, registry: Registry | None = None, console: Console | None = None) -> dict:
    """Scores of the saved model on ``split`` of ``settings.corpus``: the split tagged by the Tagger, then scored."""
    from mscmt_cli.console import make_console

    console = console or make_console()
    if settings.data_dir is None:
        raise MscmtError("no data directory: pass --data-dir DIR")
    tagger = evaluation_tagger(run_dir, settings, registry or Registry.from_entry_points())
    check_context_inputs(settings, tagger.spec.context)
    data = load_split(settings.data_dir, settings.corpus, split)
    tags, notes = tag_tweets(tagger, data.tweets, settings, console)
    scores = score([t.tags for t in data.tweets], tags)
    console.print(scores_table(scores, f"{data.corpus} {split}"))
    for note in notes:
        console.print(f"[yellow]warning:[/] {note}")
    return scores


def check_scores_target(path: Path | None) -> Path | None:
    """Refuse an unusable ``--json`` target (empty, ``.``, a directory, below a file) before any scoring."""
    return None if path is None else check_file_target(path, "--json")


def save_scores(path: Path, scores: dict) -> None:
    """Write the scores as JSON (atomically) to ``path``."""
    write_json(check_file_target(path, "--json"), scores)


def run_evaluate(
    run_dir: Path,
    settings: Settings,
    split: str,
    registry: Registry | None = None,
    console: Console | None = None,
    json_out: Path | None = None,
) -> dict:
    """``mscmt evaluate``: check the ``--json`` target, score, then write the scores there."""
    check_scores_target(json_out)
    scores = evaluate_run(run_dir, settings, split, registry, console)
    if json_out is not None:
        save_scores(json_out, scores)
    return scores
