"""Rerun the README's results table: text-only vs caption+additive vs caption+gated, on the real benchmarks.

For TWITTER-2015 and TWITTER-2017, three variants, each with the CRF and the
offline all-MiniLM-L6-v2 text encoder, three seeds each, trained with early
stopping on validation weighted F1. Every run goes to
``<out>/runs/<corpus>-<variant>-s<seed>/`` (finished runs are skipped, so an
interrupted table resumes), and the table of test micro / weighted F1
(mean ± standard deviation over seeds) is written to ``<out>/results.md`` and
``<out>/results.json``.

    python benchmarks/results.py --data-dir ../shared/data --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from mscmt_cli.console import make_console
from mscmt_cli.engine.trainer import train
from mscmt_cli.settings import load_settings

VARIANTS = {
    "text-only": dict(image="none", fusion="none"),
    "caption+additive": dict(image="caption", fusion="additive"),
    "caption+gated": dict(image="caption", fusion="gated"),
}
CAPTIONS = {"twitter2015": "BLIP2_15.txt", "twitter2017": "BLIP2_17.txt"}
PUBLISHED = [  # (system, encoders, T-2015 micro F1, T-2017 micro F1) as their authors report them
    ("UMT (ACL 2020)", "BERT-base / ResNet-152", "73.41", "85.31"),
    ("HVPNeT (NAACL Findings 2022)", "BERT-base / ResNet + object crops", "75.32", "86.87"),
    ("ITA (NAACL 2022)", "XLM-R-large / image as text", "78.03", "89.75"),
    ("MSCMT_Hybrid (the paper)", "BERTweet / CLIP ViT-L/14", "merged only: weighted F1 75.97", "—"),
]


def run_one(data_dir: Path, out: Path, corpus: str, variant: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one cell (or read it back if finished) and return its test scores."""
    run_dir = out / "runs" / f"{corpus}-{variant}-s{seed}"
    done = run_dir / "test_scores.json"
    if done.is_file():
        return json.loads(done.read_text())
    overrides = dict(text="minilm", decoder="crf", corpus=corpus, data_dir=data_dir, out=run_dir, seed=seed,
                     epochs=args.epochs, patience=args.patience, lr=args.lr, batch_size=args.batch_size,
                     captions=data_dir / "captions" / CAPTIONS[corpus], **VARIANTS[variant])
    resume = (run_dir / "checkpoint" / "state.pt").is_file()
    if run_dir.exists() and not resume:
        import shutil

        shutil.rmtree(run_dir)
    started = time.time()
    train(load_settings(None, overrides), console=make_console(), resume=resume)
    print(f"{corpus} {variant} seed {seed}: {time.time() - started:.0f} s", flush=True)
    return json.loads(done.read_text())


def mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    pct = [100 * v for v in values]
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct) if len(pct) > 1 else 0.0:.2f}"


def table(results: dict, corpora: list[str], seeds: list[int]) -> str:
    lines = ["| corpus | variant (minilm + CRF) | test micro F1 | test weighted F1 | seeds |", "|---|---|---|---|---|"]
    for corpus in corpora:
        for variant in VARIANTS:
            rows = [results[corpus][variant][str(s)] for s in seeds if str(s) in results[corpus][variant]]
            lines.append(f"| {corpus} | {variant} | {mean_std([r['micro']['f1'] for r in rows])} | "
                         f"{mean_std([r['weighted']['f1'] for r in rows])} | {len(rows)} |")
    lines += ["", "Published, with their own encoders (not comparable encoder-for-encoder):", "",
              "| system | text / image encoder | TWITTER-2015 | TWITTER-2017 |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PUBLISHED]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--corpora", default="twitter2017,twitter2015")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    corpora, seeds = args.corpora.split(","), [int(s) for s in args.seeds.split(",")]
    results: dict = {c: {v: {} for v in VARIANTS} for c in corpora}
    for seed in seeds:
        for corpus in corpora:
            for variant in VARIANTS:
                scores = run_one(args.data_dir, args.out, corpus, variant, seed, args)
                results[corpus][variant][str(seed)] = {k: scores[k] for k in ("micro", "weighted", "types", "best_epoch")}
                (args.out / "results.json").write_text(json.dumps({"settings": vars(args) | {"data_dir": str(args.data_dir), "out": str(args.out)}, "results": results}, indent=2))
                (args.out / "results.md").write_text(table(results, corpora, seeds))
    print(table(results, corpora, seeds))


if __name__ == "__main__":
    main()
