"""One factor at a time: what each training choice costs or gains against the Hugging Face recipe.

Text-only all-MiniLM-L6-v2 (the recipe's encoder, ../shared/ANCHORS.md) with
mscmt's defaults is the reference cell; every other cell changes one factor
(the paper's class-balanced sampler, softmax instead of the CRF, no BIO
constraints, one learning rate, no warm-up, no weight decay, ...). Each cell
is trained on TWITTER-2017 and TWITTER-2015 with three seeds, 3 epochs, as
one row of a study (finished runs are skipped, an interrupted one resumes).
The report gives mean ± std of test micro P/R/F1 per cell, each cell's
per-seed difference to the reference (paired by seed), and the gap to the
recipe's mean.

    python benchmarks/ablation.py --data-dir ../shared/data --out benchmarks/ablation
    python benchmarks/ablation.py --factors defaults,balance --corpora twitter2017
    python benchmarks/ablation.py --report-only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import DEFAULT_DATA, report_target, write_files
from mscmt_cli.studies.tables import PairedDeltas, average_cells, markdown_table, paired_deltas, seed_scores

REFERENCE = "defaults"
FACTORS: dict[str, dict[str, Any]] = {
    REFERENCE: {},
    "balance": {"balance": True},  # the paper's sampler, drawn with replacement
    "softmax": {"decoder": "softmax"},
    "unconstrained": {"params": {"decoder": {"constraints": "none", "constrain_training": False}}},
    "constrained-decoding-only": {"params": {"decoder": {"constrain_training": False}}},
    "one-lr": {"head_lr": 5e-5},  # the recipe's single learning rate
    "no-warmup": {"warmup": 0.0},
    "no-weight-decay": {"weight_decay": 0.0},
    "epochs-5": {"epochs": 5},
    "monitor-micro": {"monitor": "micro"},  # pick the epoch on validation micro F1, not weighted
}
#: The recipe's test micro F1, mean of three seeds (../shared/ANCHORS.md).
RECIPE = {"twitter2017": 79.30, "twitter2015": 67.92}
BASE = dict(text="minilm", image="none", fusion="none", decoder="crf", lr=5e-5, batch_size=16, epochs=3, patience=2)

# scores[corpus][factor][seed] = test_scores.json content
Scores = dict[str, dict[str, dict[int, dict[str, Any]]]]


def cell_name(corpus: str, factor: str, seed: int) -> str:
    return f"{corpus}-{factor}-s{seed}"


def train_cells(data_dir: Path, out: Path, corpora: list[str], factors: list[str], seeds: list[int]) -> None:
    """Every cell as a row of one study: finished cells are checked and skipped, an interrupted one resumes."""
    from mscmt_cli.console import make_console
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import load_settings
    from mscmt_cli.studies.common import Row, run_rows

    base = load_settings(None, dict(BASE, data_dir=data_dir, out=out / "runs"))
    rows = [
        Row(cell_name(corpus, factor, seed), dict(corpus=corpus, seed=seed, **FACTORS[factor]))
        for seed in seeds
        for corpus in corpora
        for factor in factors
    ]  # seed-major: an interrupted table has whole seeds
    run_rows(base, rows, Registry.from_entry_points(), make_console(), study="ablation")


def collect(out: Path, corpora: list[str], factors: list[str], seeds: list[int]) -> Scores:
    """Test scores of every finished cell (unfinished cells are absent)."""
    from mscmt_cli.engine.rundir import TEST_SCORES

    scores: Scores = {c: {f: {} for f in factors} for c in corpora}
    for corpus in corpora:
        for factor in factors:
            for seed in seeds:
                done = out / "runs" / cell_name(corpus, factor, seed) / TEST_SCORES
                if done.is_file():
                    scores[corpus][factor][seed] = json.loads(done.read_text(encoding="utf-8"))
    return scores


def _report_kind() -> Any:
    from mscmt_cli.paths import prefix_kind

    return prefix_kind("an ablation report this script wrote", FIRST_LINE.encode("utf-8"))


#: How the page starts (an earlier ablation.md is recognised by it).
FIRST_LINE = "Test micro P / R / F1 (%), mean ± sample std over seeds; Δ: the cell minus the reference cell "


def render(scores: Scores) -> str:
    """Mean ± std per cell, paired differences to the reference cell, gap to the recipe."""
    header = ["corpus", "cell", "micro P", "micro R", "micro F1", "Δ F1 per seed", "mean Δ", "vs recipe", "seeds"]
    rows = []
    for corpus, cells in scores.items():
        reference = seed_scores(cells.get(REFERENCE, {}))
        for factor, runs in cells.items():
            if not runs:
                continue
            seeds = [runs[s] for s in sorted(runs)]
            deltas = paired_deltas(seed_scores(runs), reference) if factor != REFERENCE else PairedDeltas({})
            gap = f"{100 * statistics.mean(f for f in seed_scores(runs).values()) - RECIPE[corpus]:+.2f}" if corpus in RECIPE else "—"
            rows.append([corpus, factor, *average_cells(seeds, "micro"), deltas.per_seed(), deltas.mean(), gap, str(len(runs))])
    first = FIRST_LINE + f"(`{REFERENCE}`) with the same seed; vs recipe: mean F1 minus the HF recipe's mean (ANCHORS.md)."
    return "\n".join([first, "", *markdown_table(header, rows)]) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "ablation")
    parser.add_argument("--corpora", default="twitter2017,twitter2015")
    parser.add_argument("--factors", default=",".join(FACTORS), help="cells to train, comma separated [all]")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--report-only", action="store_true", help="write the table from finished runs; train nothing")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    corpora, factors, seeds = args.corpora.split(","), args.factors.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = sorted(set(factors) - set(FACTORS))
    if unknown:
        sys.exit(f"error: unknown factor {unknown[0]!r}; known: {', '.join(FACTORS)}")
    report_target(args.out, {"ablation.md": _report_kind()})
    if not args.report_only:
        from mscmt_cli.errors import MscmtError

        try:
            train_cells(args.data_dir, args.out, corpora, factors, seeds)
        except MscmtError as err:
            sys.exit(f"error: {err}")
    page = render(collect(args.out, corpora, list(FACTORS), seeds))
    write_files(args.out, {"ablation.md": page})
    print(page)


if __name__ == "__main__":
    main()
