"""``mscmt evaluate``: score a saved model on one split of a corpus."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mscmt_cli.data.labelset import unseen_types
from mscmt_cli.engine.data import (
    check_captions,
    check_context_inputs,
    context_store,
    data_notes,
    encode_split,
    feature_table,
    imageless_note,
    load_data_split,
    precompute_features,
)
from mscmt_cli.engine.evaluate import evaluate, resolve_device
from mscmt_cli.engine.report import scores_table
from mscmt_cli.engine.rundir import recorded_data
from mscmt_cli.errors import MscmtError
from mscmt_cli.model.build import Assembled, load_model
from mscmt_cli.paths import Reads, check_write, json_kind, write_json
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings


def model_dir(path: Path) -> Path:
    """A run directory's ``model/`` sub-directory, or ``path`` itself if it is a model."""
    from mscmt_cli.export.layout import is_export_dir

    path = Path(path)
    if is_export_dir(path):
        raise MscmtError(
            f"{path}: an ONNX export (mscmt export), not a trained run; pass the run it was exported from, "
            f"or tag with it: mscmt tag --backend onnx --model {path}"
        )
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file():
        return path
    raise MscmtError(f"{path}: no trained model here (expected {path}/model/config.json)")


def load_trained(path: Path, settings: Settings, registry: Registry) -> Assembled:
    """Reload a trained model, honouring ``--model-path`` for its frozen image encoder."""
    return load_model(model_dir(path), registry, settings.model_paths)


def evaluate_run(run_dir: Path, settings: Settings, split: str, registry: Registry | None = None, console: Console | None = None) -> dict:
    """Scores of the saved model on ``--test FILE``, else on ``split`` of ``settings.corpus``."""
    from mscmt_cli.console import make_console

    console = console or make_console()
    if settings.test_file is None and settings.data_dir is None:
        raise MscmtError("no data: pass --test FILE, or --data-dir DIR (with --corpus)")
    assembled = load_trained(run_dir, settings, registry or Registry.from_entry_points())
    check_context_inputs(settings, assembled.spec.context)
    data = load_data_split(settings, "test" if settings.test_file is not None else split)
    unseen = unseen_types(assembled.spec.labels, {data.name: data.tweets})
    for note in list(data.notes) + ([unseen] if unseen else []):
        console.print(f"[yellow]warning:[/] {note}")
    features = feature_table(settings.model_copy(update={"image": assembled.spec.components.image}), assembled.image)
    imageless = imageless_note(data.tweets, assembled.image.input_kind, settings.missing_images)
    if imageless:
        console.print(f"[yellow]warning:[/] {imageless}")
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
    if settings.test_file is not None:
        return f"scoring {run_dir} on {settings.test_file}"
    where = f" ({settings.data_dir})" if settings.data_dir is not None else ""
    if trained_on is None:
        whose = ""
    elif trained_on == settings.corpus:
        whose = ", the corpus it was trained on"
    else:
        whose = f"; it was trained on {trained_on}"
    return f"scoring {run_dir} on the {split} split of {settings.corpus}{where}{whose}"


#: What ``--json`` writes: the scores of one split (an existing file is replaced only when it is one).
SCORES_FILE = json_kind("a scores file", lambda data: isinstance(data, dict) and {"micro", "weighted", "types"} <= set(data))


def evaluate_reads(run_dir: Path, settings: Settings, split: str) -> list[tuple[str, Path]]:
    """The files ``mscmt evaluate`` reads, which ``--json`` must not replace: the run's, the split's, ``--captions``."""
    from mscmt_cli.data.corpus import corpus_dirs
    from mscmt_cli.tagging.outputs import model_files

    reads: list[tuple[str, Path]] = model_files(run_dir, "a file of the run")
    if settings.captions is not None:
        reads.append(("--captions", Path(settings.captions)))
    if settings.data_dir is not None:
        try:
            reads += [(f"the {split} split", d / f"{split}.txt") for d in corpus_dirs(settings.data_dir, settings.corpus)]
        except MscmtError:  # no such corpus: scoring reports it
            pass
    return reads


def check_scores_target(path: Path | None, reads: Reads = ()) -> Path | None:
    """Refuse an unusable ``--json`` target before any scoring: empty, ``.``, a directory, below a file, a file the
    command reads, a model file, a data split, an image, or an existing file that is not a scores file."""
    return None if path is None else check_write(path, "--json", SCORES_FILE, reads)


def save_scores(path: Path, scores: dict, reads: Reads = ()) -> None:
    """Write the scores as JSON (atomically) to ``path``."""
    write_json(check_write(path, "--json", SCORES_FILE, reads), scores)


def run_evaluate(
    run_dir: Path,
    settings: Settings,
    split: str,
    registry: Registry | None = None,
    console: Console | None = None,
    json_out: Path | None = None,
    also_reads: Reads = (),
) -> dict:
    """``mscmt evaluate``: check the ``--json`` target, say what is scored, score, then write the scores there.

    ``also_reads``: more files the command reads (the CLI adds its ``--config`` file)."""
    from mscmt_cli.console import make_console

    reads = [*evaluate_reads(run_dir, settings, split), *also_reads]
    check_scores_target(json_out, reads)
    console = console or make_console()
    console.print(scoring_line(run_dir, settings, split), markup=False, highlight=False, soft_wrap=True)
    scores = evaluate_run(run_dir, settings, split, registry, console)
    if json_out is not None:
        save_scores(json_out, scores, reads)
    return scores
