"""``mscmt ablate``: model variants on the same data and seed, the paper's Table V.

By default the paper's three variants, all with CLIP ViT-L/14 and a CRF:
V1 BERT-base + additive fusion, V2 BERT-base + gated fusion, and the full
model, BERTweet + gated fusion. ``--variant NAME=text,image,fusion,decoder``
(repeatable) replaces the list.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from mscmt_cli.errors import MscmtError
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings
from mscmt_cli.studies.common import PARTS, Row, RowResult, RowRunner
from mscmt_cli.studies.results import StudyOutcome, run_study
from mscmt_cli.studies.tables import METRICS, Column, StudyTable, pct, prf, scored_types, type_cells, type_columns

FULL = {"text": "bertweet", "image": "clip-vit-l14", "fusion": "gated", "decoder": "crf"}
DEFAULT_VARIANTS = ("V1=bert-base,clip-vit-l14,additive,crf", "V2=bert-base,clip-vit-l14,gated,crf", "full=bertweet,clip-vit-l14,gated,crf")


def parse_variant(spec: str) -> Row:
    """``"V1=bert-base,clip-vit-l14,additive,crf"`` -> a row setting the four components."""
    name, sep, parts = spec.partition("=")
    names = [p.strip() for p in parts.split(",")]
    if not sep or not name.strip() or len(names) != 4 or not all(names):
        raise MscmtError(f"--variant expects NAME=text,image,fusion,decoder (e.g. V1=bert-base,clip-vit-l14,additive,crf), got {spec!r}")
    components = dict(zip(PARTS, names))
    return Row(name.strip(), components, label=name.strip())


def variant_rows(specs: list[str] | None) -> list[Row]:
    """The given variants, or the paper's three."""
    return [parse_variant(s) for s in (specs or DEFAULT_VARIANTS)]


def reference_index(results: list[RowResult]) -> int:
    """The first full row: named ``full``, else with the full model's components, else the first row."""
    for test in (lambda r: r.row.name == "full", lambda r: all(getattr(r.settings, k) == v for k, v in FULL.items())):
        for i, r in enumerate(results):
            if test(r):
                return i
    return 0


def ablate_table(results: list[RowResult], ref: int) -> StudyTable:
    """Table V: per-type P/R/F1 per variant, weighted P/R/F1 and the F1 difference to the reference row."""
    types = scored_types([r.test for r in results])
    columns = [
        Column("Variant", ""),
        Column("Components", "", brief=False),
        *type_columns(types),
        *(Column(f"Weighted {short}", brief=short == "F1") for _, short in METRICS),
        Column("Δ F1", "+.2f"),
    ]
    base = pct(results[ref].test["weighted"]["f1"])
    rows = []
    for r in results:
        weighted = prf(r.test["weighted"])
        components = " + ".join(getattr(r.settings, k) for k in PARTS)
        rows.append([r.row.shown, components, *type_cells(r.test, types), *weighted, round(weighted[-1] - base, 2)])
    notes = [
        f"test split of {results[ref].eval_corpus}, in percent; same data and seed for every variant",
        f"Δ F1 = weighted F1 minus that of {results[ref].row.shown} (the first full model row)",
    ]
    return StudyTable("Table V: ablation", columns, rows, notes)


def ablate_summary(results: list[RowResult], console: Console) -> tuple[StudyTable, dict[str, Any]]:
    """Table V against the reference row, which ``results.json`` names."""
    ref = reference_index(results)
    return ablate_table(results, ref), {"reference": results[ref].row.name}


def run_ablate(
    settings: Settings,
    variants: list[str] | None = None,
    registry: Registry | None = None,
    console: Console | None = None,
    runner: RowRunner | None = None,
) -> StudyOutcome:
    """Train every variant (skipping finished ones) and write Table V."""
    return run_study("ablate", settings, variant_rows(variants), ablate_summary, registry, console, runner)
