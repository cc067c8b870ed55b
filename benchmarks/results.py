"""Rerun the README's results table: text-only against the ways a caption enters the model, on the real benchmarks.

For TWITTER-2015 and TWITTER-2017, six variants (text-only; the caption as one
sentence vector, fused additively or gated; the caption's sub-words attended
over by cross-attention; the caption as the text encoder's second segment; both
of the last two), each with the CRF and the offline all-MiniLM-L6-v2 text
encoder, three seeds each, trained with early stopping on validation weighted
F1; ``--variants`` also takes the cross-attention trials of ``TRIALS`` (no
gate, 8 heads, 2 layers; caption context with 8 heads). Every run goes to
``<out>/runs/<corpus>-<variant>-s<seed>/`` (finished runs are skipped, so an
interrupted table resumes). From every finished run (and the cells an earlier
``results.json`` holds with the same training settings) it writes
``<out>/results.md`` (mean ± standard deviation over seeds of test micro and
weighted F1 with micro precision and recall, the per-seed difference of each captioned variant to text-only,
per-type F1, the published numbers), ``<out>/results.json`` and
``<out>/results.png``.

    python benchmarks/results.py --data-dir ../shared/data --out benchmarks/results
    python benchmarks/results.py --report-only      # tables and chart from finished runs, no training
    python benchmarks/results.py --ray auto         # the 36 runs as tasks on a Ray cluster (pip install "mscmt[ray]")
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mscmt_cli.labels import ENTITY_TYPES
from mscmt_cli.studies.charts import seed_figure
from mscmt_cli.studies.common import TEST_SCORES
from mscmt_cli.studies.tables import average_cells, markdown_table, paired_deltas, seed_scores, type_f1_cells

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import DEFAULT_DATA, earlier_report, write_files

VARIANTS = {
    "text-only": dict(image="none", fusion="none"),
    "caption+additive": dict(image="caption", fusion="additive"),
    "caption+gated": dict(image="caption", fusion="gated"),
    # issue 14: the caption's sub-words as image tokens, the caption as the text encoder's second segment, both
    "caption-tokens+cross-attention": dict(image="caption-tokens", fusion="cross-attention"),
    "context": dict(context="caption", image="none", fusion="none"),
    "context+caption-tokens+cross-attention": dict(context="caption", image="caption-tokens", fusion="cross-attention"),
}
#: What the literature varies in cross-attention (UMT's gate, heads, depth), one change each from
#: caption-tokens+cross-attention (heads 4, 1 layer, gate on), and the two best of both corpora combined
#: (caption context + 8 heads); trained only when named in --variants.
TRIALS = {
    f"caption-tokens+cross-attention-{name}": dict(image="caption-tokens", fusion="cross-attention", params={"fusion": change})
    for name, change in {"no-gate": {"gate": False}, "8-heads": {"heads": 8}, "2-layers": {"layers": 2}}.items()
}
TRIALS["context+caption-tokens+cross-attention-8-heads"] = dict(context="caption", **TRIALS["caption-tokens+cross-attention-8-heads"])
MAIN = list(VARIANTS)
VARIANTS |= TRIALS
BASELINE = "text-only"
CORPORA = ("twitter2017", "twitter2015")  # the report's order
KEPT = ("micro", "weighted", "types", "best_epoch")  # what the report keeps of a cell's test scores
TRAINING = ("epochs", "patience", "lr", "batch_size")  # an earlier report's cells count only if these match
CAPTIONS = {"twitter2015": "BLIP2_15.txt", "twitter2017": "BLIP2_17.txt"}
PUBLISHED = [  # (system, encoders, T-2015 micro F1, T-2017 micro F1) as their authors report them
    ("UMT (ACL 2020)", "BERT-base / ResNet-152", "73.41", "85.31"),
    ("HVPNeT (NAACL Findings 2022)", "BERT-base / ResNet + object crops", "75.32", "86.87"),
    ("ITA (NAACL 2022)", "XLM-R-large / image as text", "78.03", "89.75"),
    ("MSCMT_Hybrid (the paper)", "BERTweet / CLIP ViT-L/14", "merged only: weighted F1 75.97", "—"),
]

# results[corpus][variant][seed] = {"micro": {...}, "weighted": {...}, "types": {...}, "best_epoch": int}
Results = dict[str, dict[str, dict[int, dict]]]


def cell_dir(out: Path, corpus: str, variant: str, seed: int) -> Path:
    return out / "runs" / cell_name(corpus, variant, seed)


def cell_name(corpus: str, variant: str, seed: int) -> str:
    return f"{cell_prefix(corpus, variant)}{seed}"


def cell_prefix(corpus: str, variant: str) -> str:
    return f"{corpus}-{variant}-s"


def train_cells(args: argparse.Namespace, corpora: list[str], seeds: list[int]) -> None:
    """Train every cell as a row of one study (``mscmt_cli.studies``): finished cells are skipped
    (after checking they were trained with these settings), an interrupted one resumes."""
    from mscmt_cli.console import make_console
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import load_settings
    from mscmt_cli.studies.common import Row, run_rows

    base = load_settings(
        None,
        dict(
            text="minilm",
            decoder="crf",
            data_dir=args.data_dir,
            out=args.out / "runs",
            epochs=args.epochs,
            patience=args.patience,
            lr=args.lr,
            batch_size=args.batch_size,
        ),
    )
    rows = [
        Row(
            cell_name(corpus, variant, seed),
            dict(corpus=corpus, seed=seed, **VARIANTS[variant], captions=args.data_dir / "captions" / CAPTIONS[corpus]),
        )
        for seed in seeds
        for corpus in corpora
        for variant in args.variants.split(",")
    ]  # seed-major: an interrupted table has whole seeds
    runner = None
    if args.ray is not None:
        from mscmt_cli.cluster.rows import RayRows

        runner = RayRows(args.ray, args.gpus_per_row)
    run_rows(base, rows, Registry.from_entry_points(), make_console(), runner=runner)


def collect(out: Path, args: argparse.Namespace, earlier: dict | None) -> Results:
    """The test scores of every finished cell of every corpus and seed: those under ``<out>/runs``,
    then those the ``earlier`` report (``results.json``) recorded with the same training settings
    whose run directory is gone (rerunning one corpus, or cleaning the runs, never drops a cell
    from the report). Corpora without a finished cell are left out."""
    results: Results = {c: {v: {} for v in VARIANTS} for c in CORPORA}
    for corpus, variants in results.items():
        for variant, runs in variants.items():
            for done in (out / "runs").glob(f"{cell_prefix(corpus, variant)}*/{TEST_SCORES}"):
                seed = done.parent.name.removeprefix(cell_prefix(corpus, variant))
                if seed.isdigit():
                    runs[int(seed)] = {k: v for k, v in json.loads(done.read_text()).items() if k in KEPT}
    for corpus, variants in recorded(earlier, args).items():
        for variant, runs in variants.items():
            for seed, scores in runs.items():
                if corpus in results and variant in VARIANTS:
                    results[corpus][variant].setdefault(int(seed), scores)
    ordered = {c: {v: dict(sorted(runs.items())) for v, runs in vs.items()} for c, vs in results.items()}
    return {c: vs for c, vs in ordered.items() if any(vs.values())} or ordered


def is_report(report: object) -> bool:
    """Whether a ``results.json`` is one this script wrote."""
    return isinstance(report, dict) and isinstance(report.get("settings"), dict) and isinstance(report.get("results"), dict)


def recorded(earlier: dict | None, args: argparse.Namespace) -> dict[str, dict[str, dict[str, dict]]]:
    """The cells of an earlier report, if it was trained with these settings (else none)."""
    if earlier is None or any(earlier["settings"].get(key) != getattr(args, key) for key in TRAINING):
        return {}
    return earlier["results"]


def ran(variants: dict[str, dict[int, dict]]) -> dict[str, dict[int, dict]]:
    """The variants with at least one finished run (a trial nobody ran is not a row)."""
    return {variant: runs for variant, runs in variants.items() if runs}


def main_table(results: Results) -> list[str]:
    """Test micro P, R and F1 (precision and recall: what the balanced sampler trades), weighted F1, seeds."""
    header = ["corpus", "variant (minilm + CRF)", "test micro P", "test micro R", "test micro F1", "test weighted F1", "seeds"]
    rows = [
        [
            corpus,
            variant,
            *average_cells(list(runs.values()), "micro"),
            *average_cells(list(runs.values()), "weighted", ["f1"]),
            str(len(runs)),
        ]
        for corpus, variants in results.items()
        for variant, runs in ran(variants).items()
    ]
    return markdown_table(header, rows)


def delta_table(results: Results) -> list[str]:
    """Per seed, test micro F1 of each captioned variant minus text-only with the same seed (points)."""
    rows = []
    for corpus, variants in results.items():
        base = seed_scores(variants[BASELINE])
        for variant, runs in variants.items():
            deltas = paired_deltas(seed_scores(runs), base)
            if variant != BASELINE and deltas.by_seed:
                rows.append([corpus, variant, deltas.per_seed(), deltas.mean(), f"{deltas.better} of {len(deltas.by_seed)}"])
    return markdown_table(["corpus", "variant", "Δ micro F1 vs text-only, per seed", "mean Δ", "seeds better"], rows)


def type_table(results: Results) -> list[str]:
    rows = [
        [corpus, variant, *type_f1_cells(list(runs.values()), ENTITY_TYPES)]
        for corpus, vs in results.items()
        for variant, runs in ran(vs).items()
    ]
    return markdown_table(["corpus", "variant", *ENTITY_TYPES], rows)


def render(results: Results) -> str:
    """The whole results page as Markdown."""
    lines = [
        "Test F1 (%), mean ± sample standard deviation over seeds:",
        "",
        *main_table(results),
        "",
        "Paired by seed (each captioned run minus the text-only run with the same seed, in points):",
        "",
        *delta_table(results),
        "",
        "Per-type test F1 (%), mean ± std over seeds:",
        "",
        *type_table(results),
        "",
        "Published, with their own encoders (not comparable encoder-for-encoder):",
        "",
        *markdown_table(["system", "text / image encoder", "TWITTER-2015", "TWITTER-2017"], PUBLISHED),
    ]
    return "\n".join(lines) + "\n"


def chart(results: Results, path: Path) -> Path:
    """One panel per corpus: test micro F1 per variant, mean ± std over seeds and one dot per seed (one colour per variant)."""
    panels = {
        corpus: {variant: [100 * f for f in seed_scores(runs).values()] for variant, runs in vs.items()} for corpus, vs in results.items()
    }
    title = "Text only vs BLIP-2 captions as the image (diamond: mean ± std over seeds; dots: seeds)"
    fig = seed_figure(panels, title, "test micro F1 (%)", "minilm + CRF", order=list(VARIANTS))
    write_files(Path(path).parent, {Path(path).name: fig})
    return path


def write_report(out: Path, results: Results, args: argparse.Namespace) -> str:
    """Write results.json, results.md and results.png; return the Markdown."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    serial = {c: {v: {str(s): r for s, r in runs.items()} for v, runs in vs.items()} for c, vs in results.items()}
    page = render(results)
    write_files(out, {"results.json": json.dumps({"settings": settings, "results": serial}, indent=2), "results.md": page})
    chart(results, out / "results.png")
    return page


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="corpora to train [both]; the report covers every finished cell")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument(
        "--variants", default=",".join(MAIN), help=f"variants to train, comma separated [the main ones]; also: {', '.join(TRIALS)}"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--report-only", action="store_true", help="write the tables and chart from finished runs; train nothing")
    parser.add_argument("--ray", metavar="ADDRESS", help="train the cells as tasks on a Ray cluster (local, auto, ray://HOST:PORT)")
    parser.add_argument("--gpus-per-row", type=float, help="with --ray: GPUs per cell (default: 1 when the cluster has GPUs, else 0)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    corpora, seeds = args.corpora.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        sys.exit(f"error: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    earlier = earlier_report(args.out, "results", is_report, (".json", ".md", ".png"))
    if not args.report_only:
        from mscmt_cli.errors import MscmtError

        try:
            train_cells(args, corpora, seeds)
        except MscmtError as err:
            sys.exit(f"error: {err}")
    print(write_report(args.out, collect(args.out, args, earlier), args))


if __name__ == "__main__":
    main()
