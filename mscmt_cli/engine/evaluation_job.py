"""``mscmt evaluate``: score a saved model on one split of a corpus."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mscmt_cli.data.corpus import load_split
from mscmt_cli.engine.data import (
    check_captions,
    check_context_inputs,
    context_store,
    data_notes,
    encode_split,
    feature_table,
    precompute_features,
)
from mscmt_cli.engine.evaluate import evaluate, resolve_device
from mscmt_cli.engine.report import scores_table
from mscmt_cli.engine.rundir import recorded_data, write_json
from mscmt_cli.errors import MscmtError
from mscmt_cli.model.build import Assembled, load_model
from mscmt_cli.paths import check_file_target
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings


def model_dir(path: Path) -> Path:
    """A run directory's ``model/`` sub-directory, or ``path`` itself if it is a model."""
    path = Path(path)
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file():
        return path
    raise MscmtError(f"{path}: no trained model here (expected {path}/model/config.json)")


def load_trained(path: Path, settings: Settings, registry: Registry) -> Assembled:
    """Reload a trained model, honouring ``--model-path`` for its frozen image encoder."""
    return load_model(model_dir(path), registry, settings.model_paths)


def evaluate_run(run_dir: Path, settings: Settings, split: str, registry: Registry | None = None, console: Console | None = None) -> dict:
    """Scores of the saved model on ``split`` of ``settings.corpus``."""
    from mscmt_cli.console import make_console

    console = console or make_console()
    if settings.data_dir is None:
        raise MscmtError("no data directory: pass --data-dir DIR")
    assembled = load_trained(run_dir, settings, registry or Registry.from_entry_points())
    check_context_inputs(settings, assembled.spec.context)
    data = load_split(settings.data_dir, settings.corpus, split)
    features = feature_table(settings.model_copy(update={"image": assembled.spec.components.image}), assembled.image)
    context = context_store(settings, assembled.spec.context, features)
    check_captions(context, data.tweets)
    precompute_features(features, data.tweets, console, settings.progress_every)
    device = resolve_device(settings.device)
    model = assembled.model.to(device)
    dataset = encode_split(data, model.text, features, assembled.spec.labels, context)
    scores = evaluate(model, dataset, [t.tags for t in data.tweets], assembled.spec.labels, settings.eval_batch_size, device)
    console.print(scores_table(scores, f"{data.corpus} {split}"))
    for note in data_notes(features, context):
        console.print(f"[yellow]warning:[/] {note}")
    return scores


def scoring_line(run_dir: Path, settings: Settings, split: str) -> str:
    """``scoring RUN on the test split of twitter2017 (DATA_DIR), the corpus it was trained on``."""
    recorded = recorded_data(run_dir)
    trained_on = None if recorded is None else recorded[1].get("corpus")
    where = f" ({settings.data_dir})" if settings.data_dir is not None else ""
    if trained_on is None:
        whose = ""
    elif trained_on == settings.corpus:
        whose = ", the corpus it was trained on"
    else:
        whose = f"; it was trained on {trained_on}"
    return f"scoring {run_dir} on the {split} split of {settings.corpus}{where}{whose}"


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
    """``mscmt evaluate``: check the ``--json`` target, say what is scored, score, then write the scores there."""
    from mscmt_cli.console import make_console

    check_scores_target(json_out)
    console = console or make_console()
    console.print(scoring_line(run_dir, settings, split), markup=False, highlight=False, soft_wrap=True)
    scores = evaluate_run(run_dir, settings, split, registry, console)
    if json_out is not None:
        save_scores(json_out, scores)
    return scores
