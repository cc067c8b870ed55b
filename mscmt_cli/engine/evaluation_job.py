"""``mscmt evaluate``: score a saved model on one split of a corpus."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mscmt_cli.data.captions import CaptionSource
from mscmt_cli.data.corpus import needs_data_dir
from mscmt_cli.data.labelset import unseen_types
from mscmt_cli.engine.data import DataFiles, check_context_inputs, check_image_inputs, imageless_note, load_data_split
from mscmt_cli.engine.evaluate import tag_tweets
from mscmt_cli.engine.metrics import score
from mscmt_cli.engine.report import scores_table
from mscmt_cli.engine.rundir import recorded_data
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache
from mscmt_cli.paths import Reads, check_write, json_kind, write_json
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.tagger import Tagger, load_backend


def evaluation_tagger(run_dir: Path, settings: Settings, registry: Registry) -> Tagger:
    """The Tagger that scores a split: the model of ``run_dir`` under ``settings.backend`` (``--model-path`` honoured for
    its frozen image encoder), batching as training's evaluation does (``--eval-batch-size`` tweets, no sub-word budget);
    its processor reads the split's images and captions as training does (``--images-dir``, ``--captions``,
    ``--missing-images``, the feature cache; every tweet's image tokens kept)."""
    assembled, backend = load_backend(run_dir, registry, settings.model_paths, settings.device, settings.backend)
    check_context_inputs(assembled.spec.context, settings.captions)
    check_image_inputs(assembled.spec.components.image, assembled.image.input_kind, settings.captions, settings.images_dir)
    if assembled.image.input_kind == "pixels" and not Path(str(settings.images_dir)).is_dir():
        raise MscmtError(f"images directory {settings.images_dir} does not exist")
    reads = assembled.image.input_kind == "caption" or assembled.spec.context == "caption"
    captions = CaptionSource.from_file(Path(settings.captions), settings.missing_images) if reads and settings.captions else None
    return Tagger(
        assembled,
        settings.device,
        backend=backend,
        batch_size=settings.eval_batch_size,
        max_batch_subwords=None,
        cache=FeatureCache(None if settings.no_cache else Path(settings.cache_dir)),
        missing_images=settings.missing_images,
        captions=captions,
        images_dir=settings.images_dir,
        keep_all=True,
    )


def evaluate_run(run_dir: Path, settings: Settings, split: str, registry: Registry | None = None, console: Console | None = None) -> dict:
    """Scores of the saved model on ``--test FILE``, else on ``split`` of ``settings.corpus``: tagged by the Tagger, then scored."""
    from mscmt_cli.console import make_console
    from mscmt_cli.labels import types_of

    console = console or make_console()
    if settings.test_file is None and settings.data_dir is None and needs_data_dir(settings.corpus):
        raise MscmtError("no data: pass --test FILE, or --data-dir DIR (with --corpus)")
    tagger = evaluation_tagger(run_dir, settings, registry or Registry.from_entry_points())
    data = load_data_split(DataFiles.of(settings), "test" if settings.test_file is not None else split)
    unseen = unseen_types(tagger.labels, {data.name: data.tweets})
    imageless = imageless_note(data.tweets, tagger.images.encoder.input_kind, settings.missing_images)

    def data_notes() -> None:  # once the inputs are checked: a refused run prints its one error line alone
        for note in [*data.notes, *(n for n in (unseen, imageless) if n)]:
            console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)  # one line each, a path as it is

    tags, notes = tag_tweets(tagger, data.tweets, console, settings.progress_every, ready=data_notes)
    scores = score([t.tags for t in data.tweets], tags, types_of(tagger.labels))
    console.print(scored_line(run_dir, settings, split), markup=False, highlight=False, soft_wrap=True)
    console.print(scores_table(scores, f"{data.corpus} {split}"))
    for note in notes:
        console.print(f"[yellow]warning:[/] {note}")
    return scores


def scored_line(run_dir: Path, settings: Settings, split: str) -> str:
    """``scored RUN on the test split of twitter2017 (DATA_DIR), the corpus it was trained on`` (printed with the scores,
    so that an error before them stays the one line printed)."""
    recorded = recorded_data(run_dir)
    trained_on = None if recorded is None else recorded[1].get("corpus")
    if settings.test_file is not None:
        return f"scored {run_dir} on {settings.test_file}"
    where = f" ({settings.data_dir})" if settings.data_dir is not None else ""
    if trained_on is None:
        whose = ""
    elif trained_on == settings.corpus:
        whose = ", the corpus it was trained on"
    else:
        whose = f"; it was trained on {trained_on}"
    return f"scored {run_dir} on the {split} split of {settings.corpus}{where}{whose}"


#: What ``--json`` writes: the scores of one split (an existing file is replaced only when it is one).
SCORES_FILE = json_kind("a scores file", lambda data: isinstance(data, dict) and {"micro", "weighted", "types"} <= set(data))


def evaluate_reads(run_dir: Path, settings: Settings, split: str) -> list[tuple[str, Path]]:
    """The files ``mscmt evaluate`` reads, which ``--json`` must not replace: the run's, the split's, ``--captions``."""
    from mscmt_cli.data.corpus import split_files
    from mscmt_cli.tagging.outputs import model_files

    reads: list[tuple[str, Path]] = model_files(run_dir, "a file of the run")
    if settings.captions is not None:
        reads.append(("--captions", Path(settings.captions)))
    if settings.test_file is not None:
        reads.append(("--test", Path(settings.test_file)))
    else:
        try:
            reads += [(f"the {split} split", f) for f in split_files(settings.data_dir, settings.corpus, split)]
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
    """``mscmt evaluate``: check the ``--json`` target, score (saying what was scored), then write the scores there.

    ``also_reads``: more files the command reads (the CLI adds its ``--config`` file)."""

    reads = [*evaluate_reads(run_dir, settings, split), *also_reads]
    check_scores_target(json_out, reads)
    scores = evaluate_run(run_dir, settings, split, registry, console)
    if json_out is not None:
        save_scores(json_out, scores, reads)
    return scores
