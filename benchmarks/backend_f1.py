"""F1 of a trained run under each backend: torch, its ONNX export, and the int8 export.

Not a speed benchmark: the F1 change that ``mscmt export --quantize int8`` costs,
on the test split of each corpus. The run is exported twice into a temporary
directory (fp32 and int8), then each corpus's test tweets are tagged from their
own tokens by the three backends through mscmt's evaluation
(:func:`mscmt_cli.engine.evaluate.tag_tweets`, the road of ``mscmt evaluate``) and
scored with mscmt's seqeval scoring (micro F1, as ``mscmt evaluate``)::

    python benchmarks/backend_f1.py runs/minilm
    python benchmarks/backend_f1.py runs/gated --images-dir IMAGES --model-path clip-vit-l14=/models/clip

Prints, per corpus and backend: micro P/R/F1, the F1 change against torch, and
how many tweets got exactly torch's tags (the fp32 export must give all of them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import DEFAULT_DATA, corpus_tweets, json_target, write_files
from mscmt_cli.console import quiet_libraries

BACKENDS = {"torch": None, "onnx": "none", "onnx int8": "int8"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run directory or a saved model directory")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="directory laid out like ../shared/data [%(default)s]")
    parser.add_argument(
        "--corpora", default="twitter2015,twitter2017", help="comma-separated corpora whose test split is scored [%(default)s]"
    )
    parser.add_argument("--images-dir", type=Path, help="<id>.jpg images, for models that read pixels")
    parser.add_argument("--captions", type=Path, help="captions file, for models that read captions")
    parser.add_argument("--model-path", action="append", default=[], metavar="NAME=PATH", help="local copy of a component (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the scores as JSON here")
    return parser.parse_args(argv)


def taggers(run: Path, tmp: Path, paths: dict[str, str], captions: Path | None, images_dir: Path | None = None) -> dict:
    """The run loaded by each backend (exports written under ``tmp``)."""
    from mscmt_cli.export.exporter import export_run
    from mscmt_cli.registry import Registry
    from mscmt_cli.tagging.tagger import Tagger

    out = {}
    for name, quantize in BACKENDS.items():
        model, backend = run, "torch"
        if quantize is not None:
            model, backend = tmp / quantize, "onnx"
            export_run(run, model, Registry.from_entry_points(), paths, quantize=quantize)
        out[name] = Tagger.from_pretrained(
            model, paths, "cpu", missing_images="blank", captions=captions, backend=backend, images_dir=images_dir
        )
    return out


def scores(loaded: dict, tweets: list) -> dict:
    """``{backend: {"precision", "recall", "f1", "same_tags"}}`` on ``tweets``."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.evaluate import tag_tweets
    from mscmt_cli.engine.metrics import score

    gold = [list(t.tags) for t in tweets]
    predicted = {name: tag_tweets(tagger, tweets, make_console(quiet=True), 0)[0] for name, tagger in loaded.items()}
    out = {}
    for name, tags in predicted.items():
        micro = score(gold, tags)["micro"]
        same = sum(a == b for a, b in zip(tags, predicted["torch"]))
        out[name] = {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1"], "same_tags": same, "tweets": len(tags)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    from mscmt_cli.errors import MscmtError

    paths = dict(p.split("=", 1) for p in args.model_path if "=" in p)
    json_target(args.json, "a comparison this script wrote", lambda d: isinstance(d, dict) and {"run", "results"} <= set(d))
    results = {}
    with tempfile.TemporaryDirectory(prefix="backend-f1-") as tmp:
        try:
            loaded = taggers(args.run, Path(tmp), paths, args.captions, args.images_dir)
            for corpus in [c.strip() for c in args.corpora.split(",") if c.strip()]:
                results[corpus] = scores(loaded, corpus_tweets(args.data_dir, corpus, ("test",)))
        except MscmtError as err:
            raise SystemExit(f"error: {err}") from None
    print(f"{'corpus':<14} {'backend':<10} {'P':>7} {'R':>7} {'F1':>7} {'dF1':>7}   same tags as torch")
    for corpus, rows in results.items():
        for name, row in rows.items():
            delta = 100 * (row["f1"] - rows["torch"]["f1"])
            print(
                f"{corpus:<14} {name:<10} {100 * row['precision']:7.2f} {100 * row['recall']:7.2f} {100 * row['f1']:7.2f} {delta:+7.2f}"
                f"   {row['same_tags']}/{row['tweets']}"
            )
    if args.json:
        write_files(args.json.parent, {args.json.name: json.dumps({"run": str(args.run), "results": results}, indent=2) + "\n"}, "--json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
