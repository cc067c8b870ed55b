"""Count the invalid BIO transitions in what a saved model predicts for a CoNLL file.

An invalid transition is an ``I-X`` at the start of a tweet, after ``O``, or
after ``B-Y``/``I-Y`` of another type: a step that no BIO-labelled corpus can
hold (``mscmt_cli.model.bio``). The tweets are tagged through mscmt's
:class:`~mscmt_cli.tagging.tagger.Tagger` with the file's own tokens, and the
gold tags of the same file are counted beside the predictions for reference
(TWITTER-2015's gold has some).

    python benchmarks/count_invalid.py runs/minilm ../shared/data/twitter2015/test.txt
    python benchmarks/count_invalid.py runs/gated test.txt --images-dir images --model-path clip-vit-l14=/models/clip
    python benchmarks/count_invalid.py runs/caption test.txt --captions ../shared/data/captions/BLIP2_15.txt

``--fail-on-invalid`` exits with status 1 when a prediction holds one (for CI);
``--constraints none`` decodes the same weights without the constraints (the
behaviour before them), to measure what they remove.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import json_target, write_files
from mscmt_cli.console import quiet_libraries

EXAMPLES = 5


def count(tag_lists: Sequence[Sequence[str]], tokens: Sequence[Sequence[str]] | None = None, examples: int = EXAMPLES) -> dict:
    """``tweets``, ``tweets_with_invalid``, ``invalid_transitions`` and the first ``examples`` offending tweets."""
    from mscmt_cli.model.bio import invalid_steps

    found = [(i, invalid_steps(tags)) for i, tags in enumerate(tag_lists)]
    bad = [(i, steps) for i, steps in found if steps]
    shown = []
    for i, steps in bad[:examples]:
        t = steps[0]
        window = range(max(0, t - 2), min(len(tag_lists[i]), t + 2))
        shown.append({"tweet": i, "position": t, "context": " ".join(f"{tokens[i][k] if tokens else k}/{tag_lists[i][k]}" for k in window)})
    return {
        "tweets": len(tag_lists),
        "tweets_with_invalid": len(bad),
        "invalid_transitions": sum(len(s) for _, s in bad),
        "examples": shown,
    }


def predicted_tags(tagger, tweets: list, args: argparse.Namespace) -> list[list[str]]:
    """The tags the tagger predicts for every tweet, tagged from its own tokens by mscmt's evaluation
    (:func:`mscmt_cli.engine.evaluate.tag_tweets`: images and captions read by the tagger's processor, as
    ``mscmt evaluate`` reads them)."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.evaluate import tag_tweets

    return tag_tweets(tagger, tweets, make_console(quiet=True), 0)[0]


def old_params(tagger) -> dict:
    """The decoder parameters the saved model records."""
    return dict(tagger.spec.params.get("decoder", {}))


def with_constraints(tagger, constraints: str) -> None:
    """Swap the tagger's decoder for one with the same weights and other ``constraints``."""
    old = tagger.model.decoder
    new = type(old)(old.labels, type(old).Params(**{**old_params(tagger), "constraints": constraints}))
    new.load_state_dict(old.state_dict())
    tagger.model.decoder = new.to(tagger.device).eval()


def render(path: Path, predicted: dict, gold: dict) -> str:
    lines = [
        f"{path}: {predicted['tweets']} tweets",
        f"  predicted: {predicted['invalid_transitions']} invalid transitions in {predicted['tweets_with_invalid']} tweets",
        f"  gold:      {gold['invalid_transitions']} invalid transitions in {gold['tweets_with_invalid']} tweets",
    ]
    lines += [f"    tweet {e['tweet']}, word {e['position']}: {e['context']}" for e in predicted["examples"]]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run directory or a saved model directory")
    parser.add_argument("conll", type=Path, help="an IMGID CoNLL file (token<TAB>label lines)")
    parser.add_argument("--images-dir", type=Path, help="<id>.jpg images, for models that read pixels")
    parser.add_argument("--captions", type=Path, help="captions file, for models that read captions")
    parser.add_argument("--model-path", action="append", default=[], metavar="NAME=PATH", help="local copy of a component (repeatable)")
    parser.add_argument("--missing-images", choices=("error", "blank"), default="blank")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--constraints", choices=("bio", "none"), default="bio", help="decode with or without the BIO constraints [%(default)s]"
    )
    parser.add_argument("--json", type=Path, help="also write the counts as JSON here")
    parser.add_argument("--fail-on-invalid", action="store_true", help="exit 1 when a prediction holds an invalid transition")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    from mscmt_cli.data.conll import read_conll
    from mscmt_cli.errors import MscmtError
    from mscmt_cli.tagging.tagger import Tagger

    paths = dict(p.split("=", 1) for p in args.model_path if "=" in p)
    json_target(
        args.json, "a count this script wrote", lambda d: isinstance(d, dict) and {"predicted", "gold"} <= set(d), [("--conll", args.conll)]
    )
    try:
        tweets = read_conll(args.conll)
        tagger = Tagger.from_pretrained(
            args.run,
            paths,
            args.device,
            missing_images=args.missing_images,
            batch_size=args.batch_size,
            captions=args.captions,
            images_dir=args.images_dir,
        )
        if args.constraints != "bio":
            with_constraints(tagger, args.constraints)
        predicted = count(predicted_tags(tagger, tweets, args), [t.tokens for t in tweets])
    except MscmtError as err:
        raise SystemExit(f"error: {err}") from None
    gold = count([t.tags for t in tweets], [t.tokens for t in tweets])
    print(render(args.conll, predicted, gold))
    if args.json:
        write_files(
            args.json.parent,
            {
                args.json.name: json.dumps({"file": str(args.conll), "run": str(args.run), "predicted": predicted, "gold": gold}, indent=2)
                + "\n"
            },
            "--json",
        )
    return 1 if args.fail_on_invalid and predicted["invalid_transitions"] else 0


if __name__ == "__main__":
    sys.exit(main())
