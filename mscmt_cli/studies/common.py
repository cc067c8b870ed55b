"""Running a study's rows: one training run each, skipped or resumed on a restart."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from rich.console import Console

from mscmt_cli.data.corpus import SPLITS, canonical_name, corpus_label, file_digest, needs_data_dir, split_files
from mscmt_cli.engine.checkpoint import CHECKPOINT_DIR
from mscmt_cli.engine.rundir import (
    RUN_FILE,
    TEST_SCORES,
    data_identity,
    read_json,
    read_metrics,
    read_run_record,
    read_scores,
    recorded_data_identity,
    write_json,
)
from mscmt_cli.engine.trainer import model_spec
from mscmt_cli.errors import DataError, MscmtError, TrainingInterrupted
from mscmt_cli.model.build import resolved_params
from mscmt_cli.paths import check_dir_target, listing, make_dir, remove_file
from mscmt_cli.registry import KINDS, Registry
from mscmt_cli.settings import Settings, identity_fields, required_path

STUDY_FILE = "study.json"  # {"format": "mscmt-study", "study": "grid"}: marks a directory a study writes into
STUDY_FILES = ("results.json", "results.csv", "report.md", "chart.png", STUDY_FILE)
PARTS = tuple(KINDS)  # the four component kinds, in order: text, image, fusion, decoder
ROW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Row:
    """One model of a study.

    Attributes:
        name: the run's sub-directory of the study's ``--out`` (and its key in the results).
        overrides: settings that differ from the study's base settings.
        eval_corpus: the corpus whose test split scores the row; None for the training corpus.
        label: how tables and charts show the row (default: ``name``).
    """

    name: str
    overrides: dict[str, Any]
    eval_corpus: str | None = None
    label: str = ""

    @property
    def shown(self) -> str:
        return self.label or self.name


@dataclass
class RowResult:
    """A finished row: its run, best epoch and scores.

    ``valid`` is the ``metrics.jsonl`` record of the best epoch, ``test`` the
    scores dict (``micro``, ``weighted``, ``types``) on the evaluation corpus's
    test split, ``metrics`` every epoch's record.
    """

    row: Row
    settings: Settings
    run_dir: Path
    best_epoch: int
    valid: dict[str, Any]
    test: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    trained_now: bool = True

    @property
    def eval_corpus(self) -> str:
        return canonical_name(self.row.eval_corpus or self.settings.corpus)

    @property
    def valid_f1(self) -> float:
        """Validation weighted F1 of the best epoch (the selection criterion)."""
        return float(self.valid.get("valid_weighted_f1", 0.0))


def check_rows(rows: list[Row], registry: Registry, base: Settings) -> None:
    """Fail before any training on a bad row name, a repeated name or an unknown component."""
    seen: set[str] = set()
    for row in rows:
        if not ROW_NAME.match(row.name):
            raise MscmtError(f"row name {row.name!r}: use letters, digits, '.', '_', '+' or '-' (it names a directory)")
        if row.name in STUDY_FILES:
            raise MscmtError(f"row name {row.name!r} is a file the study writes into --out ({', '.join(STUDY_FILES)}); choose another name")
        if row.name in seen:
            raise MscmtError(f"row name {row.name!r} appears twice; every row needs its own name")
        seen.add(row.name)
        for kind in PARTS:
            registry.resolve(kind, str(row.overrides.get(kind, getattr(base, kind))))


def row_settings(base: Settings, row: Row, out: Path) -> Settings:
    """The base settings with the row's overrides, training into ``out/<row name>``."""
    try:
        return Settings.model_validate({**base.model_dump(), **row.overrides, "out": Path(out) / row.name})
    except ValidationError as err:
        first = err.errors()[0]
        raise MscmtError(f"row {row.name}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def row_state(run_dir: Path) -> str:
    """``finished`` (has test scores), ``resumable`` (has a checkpoint) or ``new``."""
    if (run_dir / TEST_SCORES).is_file():
        return "finished"
    return "resumable" if (run_dir / CHECKPOINT_DIR).is_dir() else "new"


def _comparable(values: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The settings that change what a run learns (``identity`` fields), normalised: corpus by its canonical
    name, component parameters validated by their components (so ``"12"`` and ``12`` agree). A setting the
    record lacks was added after the run and takes its default, which is what mscmt did before it existed."""
    fields = Settings.model_fields
    out = {k: values[k] if k in values else fields[k].get_default(call_default_factory=True) for k in identity_fields()}
    out["corpus"] = canonical_name(str(out["corpus"]))
    params = out.get("params") or {}
    out["params"] = {kind: resolved_params(registry, kind, str(out[kind]), params.get(kind, {})) for kind in PARTS}
    return out


def check_same_settings(run_dir: Path, settings: Settings, registry: Registry) -> None:
    """Refuse to reuse a run that was trained with other settings, or on other data, than the row asks.

    "The same data" is the same bytes: the SHA-256 of every file the row would
    read now must equal the one in ``run.json``, matched by corpus folder and
    file name (so a data directory that moved still counts as the same data).
    """
    try:
        record = read_run_record(run_dir)
    except MscmtError as err:
        raise MscmtError(f"{err}; remove {run_dir} to train this row again") from None
    if record is None:
        raise MscmtError(f"{run_dir} has no {RUN_FILE}, so how it was trained is unknown; remove {run_dir} to train this row again")
    saved = _comparable(record["settings"], registry)
    wanted = _comparable(settings.model_dump(mode="json"), registry)
    for key in identity_fields():
        if saved[key] != wanted[key]:
            raise MscmtError(
                f"{run_dir} was trained with {key}={saved[key]!r}, but this study asks {key}={wanted[key]!r}; "
                f"rerun with the same options or choose another --out"
            )
    try:
        trained_on = recorded_data_identity(run_dir, record)
    except MscmtError as err:
        raise MscmtError(f"{err}; remove {run_dir} to train this row again") from None
    check_same_data(run_dir, trained_on, current_data(settings, settings.corpus))


def current_data(settings: Settings, corpus: str, splits: tuple[str, ...] = SPLITS) -> dict[str, tuple[Path, str]]:
    """``{"<corpus folder>/<split>.txt": (path, SHA-256)}`` of the files ``corpus`` is read from now
    (the ``--train``/``--valid``/``--test`` files when the data is given by path)."""
    if settings.train_file is not None:
        named = {"train": settings.train_file, "valid": settings.valid_file, "test": settings.test_file}
        paths = [Path(p) for p in (named.get(split) for split in splits) if p is not None]
        return {name: (f, digest) for f in paths for name, digest in data_identity([(f, _digest(f))]).items()}
    if settings.data_dir is None and needs_data_dir(corpus):
        raise MscmtError("no data directory: pass --data-dir DIR (the study checks its finished rows against their data)")
    files = [f for split in splits for f in split_files(settings.data_dir, corpus, split)]
    return {name: (f, digest) for f in files for name, digest in data_identity([(f, _digest(f))]).items()}


def check_same_data(run_dir: Path, recorded: dict[str, str], now: dict[str, tuple[Path, str]]) -> None:
    """Refuse when a data file's bytes (or the set of files) differ from what ``run_dir`` recorded."""
    if set(recorded) != set(now):
        raise MscmtError(
            f"{run_dir} was trained on other data files ({', '.join(sorted(recorded))}) than this study reads "
            f"({', '.join(sorted(now))}); rerun with the same --data-dir or choose another --out"
        )
    for name in sorted(now):
        path, digest = now[name]
        if recorded[name] != digest:
            raise MscmtError(
                f"{run_dir} was trained on other data: {name} had SHA-256 {recorded[name][:12]}… "
                f"but {path} has {digest[:12]}…; rerun with the same data or choose another --out"
            )


def _digest(path: Path) -> str:
    """SHA-256 of a data file, computed once per content (size and modification time) in this process."""
    stat = Path(path).stat()
    return _digest_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(Path(path))


def train_row(settings: Settings, state: str, registry: Registry, console: Console) -> None:
    """Train a new row, or resume an interrupted one from its checkpoint.

    Scores on other corpora from an earlier model in the same directory are
    dropped first, so they are computed again from the model trained now.
    """
    from mscmt_cli.engine.trainer import train

    if state == "resumable":  # a new row's directory is checked by train() and has nothing of ours to drop
        for stale in required_path(settings.out, "--out").glob("eval_*_test.json"):
            remove_file(stale)
    train(settings, registry=registry, console=console, resume=state == "resumable")


def eval_scores(run_dir: Path, settings: Settings, corpus: str, registry: Registry, console: Console) -> dict[str, Any]:
    """Test scores of a trained row on another corpus (computed once, kept in the run directory)."""
    from mscmt_cli.engine.evaluation_job import evaluate_run

    path = run_dir / f"eval_{corpus_label(corpus)}_test.json"
    data = {name: digest for name, (_, digest) in current_data(settings, corpus, ("test",)).items()}
    if path.is_file():
        kept = read_scores(path)
        if kept.get("data_files") == data:
            return kept
        console.print(f"{path}: computed on other data than {corpus}'s test split now; scoring again")
    scores = evaluate_run(run_dir, settings.model_copy(update={"corpus": corpus}), "test", registry, console)
    write_json(path, {"corpus": canonical_name(corpus), "split": "test", "data_files": data, **scores})
    return scores


def collect(row: Row, settings: Settings, trained_now: bool, registry: Registry, console: Console) -> RowResult:
    """Read a finished row's records (and score it on its evaluation corpus)."""
    run_dir = required_path(settings.out, "--out")
    own = read_scores(run_dir / TEST_SCORES)
    best = int(own.get("best_epoch", 0))
    metrics = read_metrics(run_dir)
    valid = next((m for m in metrics if m.get("epoch") == best), {})
    other = row.eval_corpus is not None and canonical_name(row.eval_corpus) != canonical_name(settings.corpus)
    test = eval_scores(run_dir, settings, str(row.eval_corpus), registry, console) if other else own
    return RowResult(row, settings, run_dir, best, valid, test, metrics, trained_now)


def collect_finished(row: Row, settings: Settings, trained_now: bool, registry: Registry, console: Console) -> RowResult:
    """:func:`collect` for a row another machine trained: its run directory must be visible here."""
    run_dir = required_path(settings.out, "--out")
    if not (run_dir / TEST_SCORES).is_file():
        raise MscmtError(
            f"row {row.name} finished on the cluster, but {run_dir / TEST_SCORES} is not visible here: "
            "--out must be on storage that every node and this machine see at the same path"
        )
    return collect(row, settings, trained_now, registry, console)


def train_or_skip(row: Row, settings: Settings, registry: Registry, console: Console, out: Path) -> bool:
    """Train a new row, resume an interrupted one, or skip a finished one; whether it was trained now.

    The one way a row is run, on this machine or as a task on a cluster
    (:mod:`mscmt_cli.cluster.rows`).
    """
    run_dir = required_path(settings.out, "--out")
    state = row_state(run_dir)
    if state != "new":
        check_same_settings(run_dir, settings, registry)
    if state == "finished":
        console.print(f"{row.name}: already finished ({run_dir / TEST_SCORES}), skipped")
        return False
    console.print(f"{row.name}: {'resuming the interrupted run in' if state == 'resumable' else 'training into'} {run_dir}")
    try:
        train_row(settings, state, registry, console)
    except (KeyboardInterrupt, TrainingInterrupted) as err:
        epoch = f" after epoch {err.epoch}" if isinstance(err, TrainingInterrupted) else ""
        raise MscmtError(
            f"row {row.name}: interrupted{epoch}; run the same command with --out {out} to finish the remaining rows"
        ) from None
    except MscmtError as err:
        raise MscmtError(f"row {row.name}: {err}") from None
    return True


def run_row(row: Row, settings: Settings, registry: Registry, console: Console, out: Path) -> RowResult:
    """Train (or skip, or resume) one row and read its results."""
    trained_now = train_or_skip(row, settings, registry, console, out)
    return collect(row, settings, trained_now, registry, console)


class RowRunner(Protocol):
    """Runs a study's rows somewhere else (a Ray cluster), each through :func:`run_row`.

    ``train_rows`` leaves every row finished in its run directory (visible from
    here) and returns, per row, whether it was trained now; a row that failed
    does not stop the others, and the call then raises one :class:`MscmtError`
    naming the failed rows.
    """

    def train_rows(self, jobs: list[tuple[Row, Settings]], out: Path, console: Console) -> list[bool]: ...


def claim_study_dir(out: Path | str | None, study: str) -> Path:
    """The study directory: new, empty, or one this study wrote; marked with ``study.json`` from then on.

    Refused, before any training, when it is empty or ``.`` (the current
    directory), a file, below a file, another study's directory, or a
    directory holding anything but run directories and a study's result files.
    """
    if out is None:
        raise MscmtError("no study directory: pass --out DIR")
    path = check_dir_target(out, "--out")
    names = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if STUDY_FILE in names:
        marker = read_json(path / STUDY_FILE)
        if not isinstance(marker, dict) or marker.get("format") != "mscmt-study":
            raise DataError(path / STUDY_FILE, None, "not an mscmt study marker; choose another --out")
        if marker.get("study") != study:
            raise MscmtError(f"--out {path} holds a {marker.get('study')} study; choose another --out for this {study}")
        return path
    # a study directory from before study.json: its results.json, result files and run directories only
    foreign = [n for n in names if n not in STUDY_FILES and not (path / n / RUN_FILE).is_file()]
    if foreign or (names and "results.json" not in names):
        raise MscmtError(
            f"--out {path} is not empty and not a study directory (it holds {listing(foreign or names)}); choose a new or empty directory"
        )
    if "results.json" in names:
        kind = read_json(path / "results.json")
        kind = kind.get("study") if isinstance(kind, dict) else None
        if kind is None:
            raise MscmtError(f"--out {path} holds a results.json no mscmt study wrote; choose a new or empty directory")
        if kind != study:
            raise MscmtError(f"--out {path} holds the results of a {kind} study; choose another --out for this {study}")
    make_dir(path, "--out")
    write_json(path / STUDY_FILE, {"format": "mscmt-study", "study": study})
    return path


def run_rows(
    base: Settings, rows: list[Row], registry: Registry, console: Console, study: str = "study", runner: RowRunner | None = None
) -> list[RowResult]:
    """Every row of a study, in order; finished rows are read, not retrained.

    With a ``runner`` the rows are trained there (all of them, however many
    fail); their results are then read here from their run directories, as
    after a one-machine run, so the study's files are the same.
    """
    check_rows(rows, registry, base)
    if base.out is None:
        raise MscmtError("no study directory: pass --out DIR")
    if base.train_file is not None and base.test_file is None:
        raise MscmtError("a study scores every row on a test split: with --train FILE, give --test FILE too")
    all_settings = [row_settings(base, row, Path(base.out)) for row in rows]
    for row, settings in zip(rows, all_settings):
        try:
            model_spec(settings, registry)  # every row's components and parameters, before any training
        except MscmtError as err:
            raise MscmtError(f"row {row.name}: {err}") from None
    out = claim_study_dir(base.out, study)
    if runner is not None:
        trained = runner.train_rows(list(zip(rows, all_settings)), out, console)
        results = [collect_finished(row, settings, now, registry, console) for row, settings, now in zip(rows, all_settings, trained)]
    else:
        results = []
        for i, (row, settings) in enumerate(zip(rows, all_settings), 1):
            console.rule(f"[{i}/{len(rows)}] {row.shown}")
            results.append(run_row(row, settings, registry, console, out))
    skipped = sum(not r.trained_now for r in results)
    if skipped:
        console.print(f"{skipped} of {len(rows)} rows were already finished and were not trained again")
    return results
