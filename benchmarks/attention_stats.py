"""Where cross-attention looks in the results table's caption-token runs, on entity and non-entity words.

For every finished ``<corpus>-<variant>-s<seed>`` run of ``results.py`` whose
fusion is ``cross-attention`` over ``caption-tokens``, tags that corpus's test
split with the run's model (its captions file as the image) and summarises
each word's attention over its caption's sub-words (the last layer's, averaged
over heads), grouped by the word's gold tag (inside an entity, ``O``, each
entity type):

* ``peak``: the largest weight of the word's row (1 = all on one sub-word);
* ``entropy``: the row's entropy over ``log N`` (1 = uniform over the ``N``
  caption sub-words, 0 = one sub-word);
* ``special``: the weight on the caption's ``[CLS]`` and ``[SEP]`` (its first
  and last sub-word), a "look nowhere" sink a trained attention often uses.

Tweets whose image has no caption (an empty caption: ``[CLS] [SEP]`` only)
are left out. Writes ``<out>/attention.md`` and ``<out>/attention.json``.

    python benchmarks/attention_stats.py --data-dir ../shared/data --out benchmarks/results
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from mscmt_cli.data.conll import Tweet
from mscmt_cli.labels import ENTITY_TYPES
from mscmt_cli.studies.tables import markdown_table

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.gate_stats import stats_of_runs, tag_test_split
from benchmarks.results import VARIANTS

#: The results table's variants whose fusion attends over caption sub-words.
ATTENDING = [name for name, v in VARIANTS.items() if v.get("fusion") == "cross-attention" and v.get("image") == "caption-tokens"]
MEASURES = ("peak", "entropy", "special")
GROUPS = ["entity", "O", *ENTITY_TYPES]


def row_measures(row: list[float]) -> dict[str, float]:
    """``peak``, normalised ``entropy`` and ``special`` (first + last weight) of one word's attention row (N >= 3)."""
    entropy = -sum(w * math.log(w) for w in row if w > 0)
    return {"peak": max(row), "entropy": entropy / math.log(len(row)), "special": row[0] + row[-1]}


def by_gold_tag(tweets: list[Tweet], rows: list[list[list[float]] | None]) -> dict[str, dict[str, list[float]]]:
    """Each measure of each word's row, grouped by the word's gold tag (``entity``, ``O``, each type)."""
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for tweet, attention in zip(tweets, rows):
        if not attention or len(attention[0]) < 3:  # no caption: nothing to attend over but [CLS] [SEP]
            continue
        for tag, row in zip(tweet.tags, attention):
            keys = ["O"] if tag == "O" else ["entity", tag.split("-", 1)[1]]
            for name, value in row_measures(row).items():
                for key in keys:
                    groups[key][name].append(value)
    return groups


def run_stats(run_dir: Path, data_dir: Path, corpus: str, batch_size: int, limit: int = 0) -> dict:
    """Tag the test split with one run and summarise its attention rows by gold tag."""
    tweets, results = tag_test_split(run_dir, data_dir, corpus, batch_size, limit)
    rows = [r.attention for r in results]
    groups = by_gold_tag(tweets, rows)
    return {key: {name: statistics.mean(values) for name, values in m.items()} | {"words": len(m["peak"])} for key, m in groups.items()}


def render(stats: dict[str, dict]) -> str:
    rows = [[name, *(" / ".join(f"{s[g][m]:.2f}" for m in MEASURES) if g in s else "—" for g in GROUPS)] for name, s in stats.items()]
    table = markdown_table(["run", *(f"{g} peak / H / sink" for g in GROUPS)], rows)
    intro = (
        "Cross-attention over the caption's sub-words on the test split, by gold tag of the word "
        "(mean over words of: peak = largest weight, H = entropy / log N, sink = weight on [CLS] + [SEP]):"
    )
    return "\n".join([intro, "", *table]) + "\n"


def main() -> None:
    stats_of_runs(__doc__ or "", ATTENDING, run_stats, render, "attention")


if __name__ == "__main__":
    main()
