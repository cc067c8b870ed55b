"""Shared helpers of the benchmark scripts: data paths, corpus subsets, interleaved timing.

Timings on a shared machine drift, so every benchmark measures a candidate and
its baseline in the same run, interleaved in small segments (A B, then B A,
...), several rounds, and reports medians and ratios (of the medians, and the
median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mscmt_cli.console import quiet_libraries

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with ``--data-dir`` and ``--repeats``."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="directory laid out like ../shared/data [%(default)s]")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each arm, interleaved [%(default)s]")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads in every arm, 0 = torch's default [%(default)s]; "
        "on a shared machine, 2 OpenMP threads competing with other processes run several times slower than 1",
    )
    return parser


def set_threads(threads: int) -> None:
    """Use ``threads`` torch/OpenMP threads here and in child processes (0: leave the defaults)."""
    if threads > 0:
        import torch

        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    quiet_libraries()


def machine_line() -> str:
    """Date, CPU count and library versions, printed at the top of every benchmark."""
    import torch
    import transformers

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# {date}  {platform.machine()}  {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
        f"load avg {os.getloadavg()[0]:.1f}  python {platform.python_version()} torch {torch.__version__} "
        f"transformers {transformers.__version__}"
    )


def corpus_tweets(data_dir: Path, corpus: str, splits: tuple[str, ...]) -> list:
    """The tweets of ``splits`` of ``corpus`` (mscmt's reader); a missing corpus ends the script with its message."""
    from mscmt_cli.data.corpus import load_split
    from mscmt_cli.errors import MscmtError

    try:
        return [t for split in splits for t in load_split(Path(data_dir), corpus, split).tweets]
    except MscmtError as err:
        raise SystemExit(f"error: {err}") from None


def save_text_model(model_dir: Path, model_paths: dict[str, str] | None = None) -> None:
    """An untrained minilm + crf model (text only, seed 13), saved as an mscmt model directory."""
    import torch

    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble, save_model
    from mscmt_cli.registry import Registry

    torch.manual_seed(13)
    components = Components(text="minilm", image="none", fusion="none", decoder="crf")
    assembled = assemble(Registry.from_entry_points(), components, list(LABELS), model_paths or {})
    save_model(model_dir, assembled.model, assembled.spec)


def command_failed(command: list[str], stderr: str) -> SystemExit:
    """The exit for a benchmarked command that failed: its start and the end of its stderr."""
    return SystemExit(f"error: {' '.join(command[:4])} ... failed:\n{stderr[-2000:]}")


def earlier_report(out: Path, stem: str, ours: Callable[[Any], bool], suffixes: Sequence[str] = (".json", ".md")) -> Any:
    """The JSON of the report ``<out>/<stem>.json`` this script wrote before, or None when there is none.

    Exits with one line, before anything is trained or written, when ``--out``
    cannot hold a report (empty, ``.``, a file, below a file), when
    ``<stem>.json`` is not one ``ours`` accepts (not JSON, someone else's), or
    when there is no ``<stem>.json`` but another report file (``<stem>`` +
    ``suffixes``) is there: a file of the user's is never overwritten.
    """
    from mscmt_cli import strict_json
    from mscmt_cli.errors import MscmtError
    from mscmt_cli.paths import check_dir_target, listing

    try:
        check_dir_target(out, "--out")
    except MscmtError as err:
        raise SystemExit(f"error: {err}") from None
    saved = out / f"{stem}.json"
    if not saved.is_file():
        taken = [f"{stem}{suffix}" for suffix in suffixes if (out / f"{stem}{suffix}").exists()]
        if taken:
            raise SystemExit(f"error: --out {out} holds {listing(taken)} that this script did not write; move it or choose another --out")
        return None
    try:
        report = strict_json.loads(saved.read_bytes())
    except (ValueError, RecursionError):
        report = None
    if report is None or not ours(report):
        raise SystemExit(f"error: {saved}: not a report this script wrote; move it or choose another --out")
    return report


def report_target(out: Path, kinds: dict[str, Any]) -> Path:
    """``--out`` of a script that writes the report files named in ``kinds`` (name -> ``mscmt_cli.paths.FileKind``
    recognising an earlier one of them), checked before anything is trained or written: not empty or ``.``, not a
    file, not below a file, and none of those names an existing file the script did not write. Other files in
    ``--out`` are never touched. Exits with one line."""
    from mscmt_cli.errors import MscmtError
    from mscmt_cli.paths import check_dir_target, check_write

    try:
        check_dir_target(out, "--out")
        for name, kind in kinds.items():
            check_write(out / name, "--out", kind)
    except MscmtError as err:
        raise SystemExit(f"error: {err}") from None
    return out


def write_files(out: Path, files: dict[str, Any], option: str = "--out") -> None:
    """Write each of ``files`` (name -> text, or a matplotlib figure for ``.png``) into ``out`` atomically
    (the folder is made when missing); exits with one line when it cannot."""
    from mscmt_cli.errors import MscmtError
    from mscmt_cli.paths import make_dir, save_figure, write_text_atomic

    try:
        make_dir(out, option)
        for name, content in files.items():
            if isinstance(content, str):
                write_text_atomic(out / name, content, option)
            else:
                save_figure(content, out / name, dpi=110)
    except MscmtError as err:
        raise SystemExit(f"error: {err}") from None


def json_target(path: Path | None, what: str, accepts: Callable[[Any], bool], reads: Sequence[tuple[str, Path]] = ()) -> Path | None:
    """A ``--json`` file the script will write: refused (one line) unless new or an earlier one ``accepts``."""
    from mscmt_cli.errors import MscmtError
    from mscmt_cli.paths import check_write, json_kind

    if path is None:
        return None
    try:
        return check_write(path, "--json", json_kind(what, accepts), reads)
    except MscmtError as err:
        raise SystemExit(f"error: {err}") from None


def conll_blocks(path: Path) -> list[str]:
    """The tweets of an IMGID CoNLL file as raw text blocks (``IMGID:`` line included)."""
    text = Path(path).read_text(encoding="utf-8")
    return [b.strip("\n") for b in text.split("\n\n") if b.strip()]


def subset_corpus(data_dir: Path, corpus: str, dest: Path, n_train: int, n_eval: int) -> tuple[Path, str]:
    """Write the first ``n_train`` train and ``n_eval`` valid/test tweets of ``corpus``
    into ``dest/<name>``; returns ``(dest, name)`` for ``--data-dir`` / ``--corpus``."""
    src = Path(data_dir) / corpus
    if not (src / "train.txt").is_file():
        raise SystemExit(f"error: {src}/train.txt not found; pass --data-dir (laid out like ../shared/data)")
    name = f"{corpus}-{n_train}"
    sizes = {"train": n_train, "valid": n_eval, "test": n_eval}
    write_files(dest / name, {f"{split}.txt": "\n\n".join(conll_blocks(src / f"{split}.txt")[:n]) + "\n\n" for split, n in sizes.items()})
    return dest, name


Segment = Callable[[], float]


def interleaved(arms: dict[str, Callable[[], list[Segment]]], repeats: int, log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Each arm's total seconds per round, its segments run alternately with the other arms'.

    Calling an arm prepares a fresh round (untimed: model loading, tokenization)
    and returns its segments; a segment does part of the work (e.g. five
    training steps) and returns the seconds it measured. Within a round the
    arms take turns segment by segment, and the order of the turns reverses
    every round (A B, B A, ...), so that a change of load on the machine
    reaches every arm alike.
    """
    times: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(repeats):
        names = list(arms) if r % 2 == 0 else list(arms)[::-1]
        segments = {name: arms[name]() for name in names}
        totals = dict.fromkeys(names, 0.0)
        for i in range(max(len(s) for s in segments.values())):
            for name in names if i % 2 == 0 else names[::-1]:
                if i < len(segments[name]):
                    totals[name] += segments[name][i]()
        for name in arms:
            times[name].append(totals[name])
        log(f"  round {r + 1}/{repeats}  " + "  ".join(f"{name} {totals[name]:.2f} s" for name in arms))
    return times


def report(times: dict[str, list[float]], baseline: str, units: dict[str, int] | int, unit: str = "tweets", ratio: str = "speed") -> None:
    """Median seconds, throughput and the ratio of each arm against ``baseline``.

    ``ratio="speed"``: throughput of the arm / throughput of the baseline (above 1: the arm is faster);
    ``ratio="cost"``: time of the arm / time of the baseline (above 1: the arm costs more).
    The ratio is shown of the medians, and as the median of the per-round (paired) ratios.
    """

    def of(arm: float, base: float) -> float:
        return base / arm if ratio == "speed" else arm / base

    label = f"{ratio} vs {baseline}"
    print(f"{'arm':<24} {'median s':>9} {unit + '/s':>11} {label:>22} {'paired':>7}   all rounds (s)")
    for name, ts in times.items():
        n = units[name] if isinstance(units, dict) else units
        med = statistics.median(ts)
        paired = statistics.median(of(a, b) for a, b in zip(ts, times[baseline]))
        runs = " ".join(f"{t:.2f}" for t in ts)
        print(f"{name:<24} {med:9.2f} {n / med:11.1f} {of(med, statistics.median(times[baseline])):21.2f}x {paired:6.2f}x   {runs}")


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def chunks(items: list, size: int) -> list[list]:
    """``items`` cut into consecutive lists of ``size``."""
    return [items[k : k + size] for k in range(0, len(items), size)]


def training_segments(run, batches: list[list[int]], per_segment: int = 5) -> list[Segment]:
    """Timed ``train_epoch`` calls over ``per_segment`` batches each, for :func:`interleaved`."""
    from mscmt_cli.engine.trainer import train_epoch

    def segment(part: list[list[int]]) -> Segment:
        def steps() -> float:
            with Stopwatch() as sw:
                train_epoch(
                    run.step_model,
                    run.model.text.pad_id,
                    run.train_set,
                    part,
                    run.optimizer,
                    run.scheduler,
                    run.settings.max_grad_norm,
                    run.device,
                )
            return sw.seconds

        return steps

    return [segment(part) for part in chunks(batches, per_segment)]
