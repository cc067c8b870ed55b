"""``mscmt crossdata A B``: train on one corpus, test on the other, and on both merged (Table VI).

Rows: ``A-to-B`` (trained on A, tested on B's test split), ``B-to-A``, and
the merged corpus (trained and tested on A + B). The label set is shared by
every corpus, so a model trained on one scores on another as it is. For
TWITTER-2015 and TWITTER-2017 the merged corpus is the built-in ``merged``;
for any other pair it is the corpus ``A+B`` (both directories read together).
A corpus named by path (``./mine``) is shown, and names its rows, by its
folder name (``mine-to-twitter2017``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from rich.console import Console

from mscmt_cli.data.corpus import MERGED, NO_DATA_DIR, SPLITS, canonical_name, corpus_label, needs_data_dir, split_files
from mscmt_cli.errors import MscmtError
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings
from mscmt_cli.studies.common import Row, RowResult, RowRunner
from mscmt_cli.studies.results import StudyOutcome, run_study
from mscmt_cli.studies.tables import Column, StudyTable, prf

SECTIONS = ("types", "micro", "weighted")


def merged_name(a: str, b: str) -> str:
    """The corpus name of A + B: the built-in ``merged`` when it is that pair, else ``A+B``."""
    return next((name for name, parts in MERGED.items() if sorted(parts) == sorted((a, b))), f"{a}+{b}")


def crossdata_rows(settings: Settings, first: str, second: str) -> list[Row]:
    """``A-to-B``, ``B-to-A`` and the merged corpus; both corpora are checked before any training."""
    a, b = canonical_name(first), canonical_name(second)
    if a == b:
        raise MscmtError(f"crossdata needs two different corpora, got {first!r} twice")
    if settings.data_dir is None and (needs_data_dir(a) or needs_data_dir(b)):
        raise MscmtError(NO_DATA_DIR)
    if settings.out is None:
        raise MscmtError("no study directory: pass --out DIR")
    for corpus in (a, b):
        for split in SPLITS:
            split_files(settings.data_dir, corpus, split)  # names the missing directory or split
    shown_a, shown_b = corpus_label(a), corpus_label(b)
    if shown_a == shown_b:
        raise MscmtError(f"crossdata: {first!r} and {second!r} are both named {shown_a!r} in rows and tables; rename one directory")
    merged = merged_name(a, b)
    return [
        Row(f"{shown_a}-to-{shown_b}", {"corpus": a}, eval_corpus=b, label=f"{shown_a} → {shown_b}"),
        Row(f"{shown_b}-to-{shown_a}", {"corpus": b}, eval_corpus=a, label=f"{shown_b} → {shown_a}"),
        Row(corpus_label(merged), {"corpus": merged}, label=corpus_label(merged)),
    ]


def _type_scores(etype: str, scores: dict[str, Any]) -> dict[str, Any]:
    return dict(scores["types"].get(etype, {}))


def crossdata_table(results: list[RowResult]) -> StudyTable:
    """Table VI: one line per entity type, then micro and weighted averages; P/R/F1 per setting."""
    columns = [Column("Type", "")] + [Column(f"{r.row.shown} {m}", brief=m == "F1") for r in results for m in ("P", "R", "F1")]
    types = list(results[0].test["types"]) if results else []
    lines: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [(t, functools.partial(_type_scores, t)) for t in types]
    lines += [("micro avg", lambda s: s["micro"]), ("weighted avg", lambda s: s["weighted"])]
    rows = [[name, *(v for r in results for v in prf(pick(r.test)))] for name, pick in lines]
    notes = [
        "A → B: trained on A, tested on B's test split; the last setting is trained and tested on both corpora merged",
        "in percent; every model is selected on its training corpus's validation split",
    ]
    return StudyTable("Table VI: cross-dataset generalisation", columns, rows, notes)


def run_crossdata(
    settings: Settings,
    first: str,
    second: str,
    registry: Registry | None = None,
    console: Console | None = None,
    runner: RowRunner | None = None,
) -> StudyOutcome:
    """Train the three rows (skipping finished ones), score them and write Table VI."""

    def summary(results: list[RowResult], console: Console) -> tuple[StudyTable, dict[str, Any]]:
        return crossdata_table(results), {"corpora": [canonical_name(first), canonical_name(second)]}

    return run_study("crossdata", settings, crossdata_rows(settings, first, second), summary, registry, console, runner)
