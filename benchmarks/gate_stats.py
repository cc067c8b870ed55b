"""How far the visual gate opens in the results table's gated runs, on entity and non-entity tokens.

For every finished ``<corpus>-caption+gated-s<seed>`` run of ``results.py``,
tags that corpus's test split with the run's model (its captions file as the
image) and reports the mean of ``g_i`` (averaged over hidden dimensions, 0 =
closed, 1 = open) over tokens inside a gold entity, tokens outside, and per
gold entity type, plus the spread of the per-tweet mean gate. Writes
``<out>/gate.md`` and ``<out>/gate.json``.

    python benchmarks/gate_stats.py --data-dir ../shared/data --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from mscmt_cli.data.conll import Tweet
from mscmt_cli.data.corpus import load_split
from mscmt_cli.labels import ENTITY_TYPES
from mscmt_cli.studies.tables import markdown_table
from mscmt_cli.tagging.tagger import Tagger, TagResult

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import DEFAULT_DATA, earlier_report, write_files
from benchmarks.results import CAPTIONS, CORPORA, TEST_SCORES, cell_dir, cell_name


def gate_by_group(tweets: list[Tweet], gates: list[list[float]]) -> dict[str, list[float]]:
    """Gate values grouped by the gold tag of their token: ``entity``, ``O`` and each entity type."""
    groups: dict[str, list[float]] = defaultdict(list)
    for tweet, gate in zip(tweets, gates):
        for tag, g in zip(tweet.tags, gate):
            if tag == "O":
                groups["O"].append(g)
            else:
                groups["entity"].append(g)
                groups[tag.split("-", 1)[1]].append(g)
    return groups


def tag_test_split(run_dir: Path, data_dir: Path, corpus: str, batch_size: int, limit: int = 0) -> tuple[list[Tweet], list[TagResult]]:
    """The test split of ``corpus`` (its first ``limit`` tweets; 0: all) and one run's results on it, with the
    corpus's captions file as the image (an image without a caption reads the empty one)."""
    tagger = Tagger.from_pretrained(
        run_dir, device="cpu", captions=data_dir / "captions" / CAPTIONS[corpus], missing_images="blank", batch_size=batch_size
    )
    tweets = list(load_split(data_dir, corpus, "test").tweets)[: limit or None]
    return tweets, tagger.tag_batch([list(t.tokens) for t in tweets], [t.image_id for t in tweets])


def run_stats(run_dir: Path, data_dir: Path, corpus: str, batch_size: int, limit: int = 0) -> dict:
    """Tag the test split with one gated run and summarise its gate values."""
    tweets, results = tag_test_split(run_dir, data_dir, corpus, batch_size, limit)
    gates = [r.gate for r in results]
    groups = gate_by_group(tweets, gates)
    per_tweet = [statistics.mean(g) for g in gates if g]
    return {
        "tokens": {k: {"mean": statistics.mean(v), "n": len(v)} for k, v in groups.items()},
        "per_tweet_mean": {
            "mean": statistics.mean(per_tweet),
            "std": statistics.pstdev(per_tweet),
            "min": min(per_tweet),
            "max": max(per_tweet),
        },
    }


def render(stats: dict[str, dict]) -> str:
    cols = ["entity", "O", *ENTITY_TYPES]
    rows = []
    for name, s in stats.items():
        cells = [f"{s['tokens'][c]['mean']:.3f}" if c in s["tokens"] else "—" for c in cols]
        t = s["per_tweet_mean"]
        rows.append([name, *cells, f"{t['std']:.3f} ({t['min']:.3f}–{t['max']:.3f})"])
    table = markdown_table(["run", *cols, "per-tweet mean: std (min–max)"], rows)
    return "\n".join(["Mean visual gate g_i (0 = closed, 1 = open) on the test split, by gold tag of the token:", "", *table]) + "\n"


def is_stats(report: object) -> bool:
    """Whether a ``gate.json`` / ``attention.json`` is one of these scripts': run name -> statistics."""
    return isinstance(report, dict) and all(
        isinstance(stats, dict) and name.startswith(tuple(f"{c}-" for c in CORPORA)) for name, stats in report.items()
    )


def stats_of_runs(doc: str, variants: list[str], stats_of: Callable[..., dict], render_page: Callable[[dict], str], stem: str) -> None:
    """The command line both statistics scripts share: ``stats_of`` each finished run of ``variants`` in
    results.py's ``--out``, then ``<out>/<stem>.json`` and ``<out>/<stem>.md`` (``render_page``). A row
    an earlier ``<stem>.json`` holds is kept when its run directory is gone, and replaced when it is not."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--corpora", default="twitter2017,twitter2015")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--batch-size", type=int, default=32, help="tweets per forward pass")
    parser.add_argument("--limit", type=int, default=0, help="only the first N test tweets (0: all)")
    args = parser.parse_args()
    stats = earlier_report(args.out, stem, is_stats) or {}  # rows of runs since cleaned stay
    for corpus in args.corpora.split(","):
        for variant in variants:
            for seed in (int(s) for s in args.seeds.split(",")):
                run_dir = cell_dir(args.out, corpus, variant, seed)
                if (run_dir / TEST_SCORES).is_file():
                    stats[cell_name(corpus, variant, seed)] = stats_of(run_dir, args.data_dir, corpus, args.batch_size, args.limit)
                    print(f"{run_dir.name}: done", flush=True)
    page = render_page(stats)
    write_files(args.out, {f"{stem}.json": json.dumps(stats, indent=2), f"{stem}.md": page})
    print(page)


def main() -> None:
    stats_of_runs(__doc__ or "", ["caption+gated"], run_stats, render, "gate")


if __name__ == "__main__":
    main()
