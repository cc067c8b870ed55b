"""Every caption variant on the bundled example, scored on all test tweets and on the image-decided ones.

The bundled example (``examples/make_corpus.py``) makes about 35% of its tweets
*image-decided*: an ambiguous name in a neutral sentence ("can't stop thinking
about Jordan") whose type only the caption tells. A fusion that uses the image
should resolve nearly all of them; text alone can only guess. Each variant is
trained with the example's settings (``examples/configs/example.toml``: minilm,
CRF, 8 epochs) as one row of a study (finished rows are skipped, an interrupted
one resumes), then tags the test split from its own tokens with the captions of
``examples/data/captions.txt``. The report gives test micro F1 on all test
tweets, on the image-decided ones and on the others, and the type each variant
gives the showcase tweet's "Jordan" (a singer's caption: PER).

    python benchmarks/example_variants.py --out benchmarks/example_variants
    python benchmarks/example_variants.py --report-only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mscmt_cli.studies.tables import average_cells, markdown_table, paired_deltas, seed_scores

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import report_target, write_files

REPO = Path(__file__).resolve().parents[1]

CONFIG = REPO / "examples" / "configs" / "example.toml"
CAPTIONS = REPO / "examples" / "data" / "captions.txt"
#: Each variant names all three of context, image and fusion: the example's settings file trains one of them.
VARIANTS: dict[str, dict[str, Any]] = {
    "text-only": dict(context="none", image="none", fusion="none"),
    "caption+gated": dict(context="none", image="caption", fusion="gated"),
    "caption-tokens+cross-attention": dict(context="none", image="caption-tokens", fusion="cross-attention"),
    "context": dict(context="caption", image="none", fusion="none"),
    "context+caption-tokens+cross-attention": dict(context="caption", image="caption-tokens", fusion="cross-attention"),
}
PARTS = ("all", "image-decided", "text-decided")  # the test tweets each F1 is computed on
SHOWCASE = (["can't", "stop", "thinking", "about", "Jordan", "today"], "ex_0001")  # the quickstart's explain tweet


def image_decided_ids() -> set[str]:
    """Image ids of the test tweets whose entity type only the caption tells (the generator's own record)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "examples" / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    build = make_corpus.build
    return {image_id for image_id, _toks, _caption, decided in build()["test"] if decided}


def train(out: Path, seeds: list[int], variants: list[str]) -> None:
    """Every variant and seed as a row of one study."""
    from mscmt_cli.console import make_console
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import load_settings
    from mscmt_cli.studies.common import Row, run_rows

    base = load_settings(CONFIG, {"out": out / "runs", "data_dir": REPO / "examples" / "data", "captions": CAPTIONS})
    rows = [Row(f"{v}-s{seed}", dict(seed=seed, **VARIANTS[v])) for seed in seeds for v in variants]
    run_rows(base, rows, Registry.from_entry_points(), make_console(), study="example-variants")


def evaluate(run: Path, tweets: list, decided: set[str]) -> dict[str, Any]:
    """Micro F1 of one run on all test tweets, the image-decided ones and the others; the showcase's tags."""
    from mscmt_cli import Tagger
    from mscmt_cli.data.captions import read_captions
    from mscmt_cli.engine.metrics import score

    tagger = Tagger.from_pretrained(run, captions=CAPTIONS)
    table = read_captions(CAPTIONS)
    reads_caption = tagger.spec.context == "caption" or tagger.images.encoder.input_kind == "caption"
    captions = [table[t.image_id] for t in tweets] if reads_caption else None
    tagged = [r.tags for r in tagger.tag_batch([list(t.tokens) for t in tweets], captions=captions)]
    parts = {"all": range(len(tweets))}
    parts["image-decided"] = [i for i, t in enumerate(tweets) if t.image_id in decided]
    parts["text-decided"] = [i for i, t in enumerate(tweets) if t.image_id not in decided]
    f1 = {name: score([tweets[i].tags for i in idx], [tagged[i] for i in idx])["micro"]["f1"] for name, idx in parts.items()}
    words, image_id = SHOWCASE
    showcase = tagger.tag_batch([words], captions=[table[image_id]] if reads_caption else None)[0]
    return {"f1": f1, "jordan": showcase.tags[words.index("Jordan")], "caption": table[image_id] if reads_caption else None}


#: How the page starts (an earlier example_variants.md is recognised by it).
FIRST_LINE = "Bundled example, test split, micro F1 (%) mean ± std over seeds; Δ: paired by seed against text-only on the "


def report_kinds() -> dict[str, Any]:
    """The two report files, each recognised when an earlier run of this script wrote it."""
    from mscmt_cli.paths import json_kind, prefix_kind

    def is_found(data: Any) -> bool:
        return isinstance(data, dict) and set(data) <= set(VARIANTS) and all(isinstance(v, dict) for v in data.values())

    return {
        "example_variants.md": prefix_kind("a report this script wrote", FIRST_LINE.encode("utf-8")),
        "example_variants.json": json_kind("a report this script wrote", is_found),
    }


def render(found: dict[str, dict[int, dict[str, Any]]]) -> str:
    """Mean ± std of test micro F1 per variant and part, paired gain over text-only, the showcase's type."""
    header = ["variant", "all", "image-decided", "text-decided", "Δ image-decided", '"Jordan"', "seeds"]
    base = seed_scores(found.get("text-only", {}), "f1", "image-decided")
    rows = []
    for variant, runs in found.items():
        if not runs:
            continue
        seeds = [runs[s] for s in sorted(runs)]
        delta = paired_deltas(seed_scores(runs, "f1", "image-decided"), base).mean() if variant != "text-only" else "—"
        jordan = ", ".join(r["jordan"] for r in seeds)
        rows.append([variant, *average_cells(seeds, "f1", PARTS, one_seed=""), delta, jordan, str(len(seeds))])
    first = FIRST_LINE + 'image-decided tweets; "Jordan": the type each seed gives the showcase tweet (gold: PER).'
    return "\n".join([first, "", *markdown_table(header, rows)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "example_variants")
    parser.add_argument("--seeds", default="13,14,15")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--report-only", action="store_true", help="score the finished runs; train nothing")
    args = parser.parse_args()
    seeds, variants = [int(s) for s in args.seeds.split(",")], args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"error: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    report_target(args.out, report_kinds())
    if not args.report_only:
        from mscmt_cli.errors import MscmtError

        try:
            train(args.out, seeds, variants)
        except MscmtError as err:
            sys.exit(f"error: {err}")
    from mscmt_cli.data.corpus import load_split

    tweets, decided = load_split(REPO / "examples" / "data", "tweets", "test").tweets, image_decided_ids()
    found: dict[str, dict[int, dict[str, Any]]] = {v: {} for v in VARIANTS}
    for v in VARIANTS:
        for seed in seeds:
            run = args.out / "runs" / f"{v}-s{seed}"
            if (run / "test_scores.json").is_file():
                found[v][seed] = evaluate(run, tweets, decided)
    page = render(found)
    write_files(args.out, {"example_variants.md": page, "example_variants.json": json.dumps(found, indent=1)})
    print(page)


if __name__ == "__main__":
    main()
