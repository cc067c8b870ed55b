"""Running a study's rows: one training run each, skipped or resumed on a restart."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from mscmt_cli.data.corpus import canonical_name
from mscmt_cli.engine.checkpoint import CHECKPOINT_DIR
from mscmt_cli.engine.rundir import TEST_SCORES, read_metrics, read_run_settings, write_json
from mscmt_cli.errors import MscmtError, TrainingInterrupted
from mscmt_cli.registry import KINDS, Registry
from mscmt_cli.settings import Settings

PARTS = tuple(KINDS)  # the four component kinds, in order: text, image, fusion, decoder
ROW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# Settings that change what a run learns: a finished row must match them to be reused.
COMPARED = ("text", "image", "fusion", "decoder", "corpus", "lr", "head_lr", "weight_decay", "warmup", "dropout",
            "epochs", "patience", "batch_size", "max_grad_norm", "seed", "balance")


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


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    out = {k: values.get(k) for k in COMPARED}
    out["corpus"] = canonical_name(str(out["corpus"]))
    return out


def check_same_settings(run_dir: Path, settings: Settings) -> None:
    """Refuse to reuse a run that was trained with other settings than the row asks."""
    try:
        recorded = read_run_settings(run_dir)
    except MscmtError as err:
        raise MscmtError(f"{err}; remove {run_dir} to train this row again") from None
    if recorded is None:
        return
    saved = _comparable(recorded)
    wanted = _comparable(settings.model_dump(mode="json"))
    for key in COMPARED:
        if saved[key] != wanted[key]:
            raise MscmtError(f"{run_dir} was trained with {key}={saved[key]!r}, but this study asks {key}={wanted[key]!r}; "
                             f"rerun with the same options or choose another --out")


def train_row(settings: Settings, state: str, registry: Registry, console: Console) -> None:
    """Train a new row, or resume an interrupted one from its checkpoint.

    Scores on other corpora from an earlier model in the same directory are
    dropped first, so they are computed again from the model trained now.
    """
    from mscmt_cli.engine.trainer import train

    for stale in Path(settings.out).glob("eval_*_test.json"):
        stale.unlink()
    train(settings, registry=registry, console=console, resume=state == "resumable")


def eval_scores(run_dir: Path, settings: Settings, corpus: str, registry: Registry, console: Console) -> dict[str, Any]:
    """Test scores of a trained row on another corpus (computed once, kept in the run directory)."""
    from mscmt_cli.engine.evaluation_job import evaluate_run

    path = run_dir / f"eval_{canonical_name(corpus)}_test.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    scores = evaluate_run(run_dir, settings.model_copy(update={"corpus": corpus}), "test", registry, console)
    write_json(path, {"corpus": canonical_name(corpus), "split": "test", **scores})
    return scores


def collect(row: Row, settings: Settings, trained_now: bool, registry: Registry, console: Console) -> RowResult:
    """Read a finished row's records (and score it on its evaluation corpus)."""
    run_dir = Path(settings.out)
    own = json.loads((run_dir / TEST_SCORES).read_text(encoding="utf-8"))
    best = int(own.get("best_epoch", 0))
    metrics = read_metrics(run_dir)
    valid = next((m for m in metrics if m.get("epoch") == best), {})
    other = row.eval_corpus is not None and canonical_name(row.eval_corpus) != canonical_name(settings.corpus)
    test = eval_scores(run_dir, settings, row.eval_corpus, registry, console) if other else own
    return RowResult(row, settings, run_dir, best, valid, test, metrics, trained_now)


def run_row(row: Row, settings: Settings, registry: Registry, console: Console, out: Path) -> RowResult:
    """Train (or skip, or resume) one row and read its results."""
    run_dir = Path(settings.out)
    state = row_state(run_dir)
    if state != "new":
        check_same_settings(run_dir, settings)
    if state == "finished":
        console.print(f"{row.name}: already finished ({run_dir / TEST_SCORES}), skipped")
    else:
        console.print(f"{row.name}: {'resuming the interrupted run in' if state == 'resumable' else 'training into'} {run_dir}")
        try:
            train_row(settings, state, registry, console)
        except (KeyboardInterrupt, TrainingInterrupted) as err:
            epoch = f" after epoch {err.epoch}" if isinstance(err, TrainingInterrupted) else ""
            raise MscmtError(f"row {row.name}: interrupted{epoch}; run the same command with --out {out} to finish the remaining rows") from None
        except MscmtError as err:
            raise MscmtError(f"row {row.name}: {err}") from None
    return collect(row, settings, state != "finished", registry, console)


def run_rows(base: Settings, rows: list[Row], registry: Registry, console: Console) -> list[RowResult]:
    """Every row of a study, in order; finished rows are read, not retrained."""
    if base.out is None:
        raise MscmtError("no study directory: pass --out DIR")
    out = Path(base.out)
    check_rows(rows, registry, base)
    all_settings = [row_settings(base, row, out) for row in rows]
    results = []
    for i, (row, settings) in enumerate(zip(rows, all_settings), 1):
        console.rule(f"[{i}/{len(rows)}] {row.shown}")
        results.append(run_row(row, settings, registry, console, out))
    skipped = sum(not r.trained_now for r in results)
    if skipped:
        console.print(f"{skipped} of {len(rows)} rows were already finished and were not trained again")
    return results
