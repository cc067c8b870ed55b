"""mscmt_cli.console.progress: a rich bar on a terminal, plain lines at most every N seconds in a log."""

from __future__ import annotations

import io
import re

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from mscmt_cli.console import PlainProgress, duration, progress
from tests.cli_support import train_args
from tests.tiny_vlm import make_tiny_blip_captioner


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _log() -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, force_terminal=False, width=200), sink


def test_a_line_at_most_every_interval_with_count_rate_and_eta():
    console, sink = _log()
    clock = Clock()
    bar = PlainProgress(console, every=30.0, clock=clock)
    task = bar.add_task("epoch 1/3", total=1054, unit="steps", info="")
    for step in range(1, 351):
        clock.now += 0.5  # 2 steps a second
        bar.update(task, advance=1, info=f"loss {1 / step:.4f}")
    lines = sink.getvalue().splitlines()
    assert len(lines) == 5  # 350 steps of 0.5 s: a line at 30, 60, 90, 120 and 150 s
    assert lines[0] == "epoch 1/3 60/1054 steps loss 0.0167 2 steps/s eta 8m17s"
    assert lines[1].startswith("epoch 1/3 120/1054 steps loss 0.0083 2 steps/s eta 7m47s")


@given(st.lists(st.floats(0, 100), min_size=1, max_size=60), st.floats(0.5, 50))
def test_lines_are_never_closer_than_the_interval(gaps, every):
    console, sink = _log()
    clock = Clock()
    bar = PlainProgress(console, every=every, clock=clock)
    task = bar.add_task("tagging", total=None, unit="lines")
    printed_at = [100.0]  # the display's start
    for gap in gaps:
        clock.now += gap
        before = sink.getvalue().count("\n")
        bar.advance(task, 3)
        printed = sink.getvalue().count("\n") > before
        assert printed == (clock.now - printed_at[-1] >= every)  # a line exactly when the interval has passed
        if printed:
            printed_at.append(clock.now)
    assert all(re.fullmatch(r"tagging \d+ lines( \S+ lines/s)?", line) for line in sink.getvalue().splitlines())


def test_durations():
    assert [duration(s) for s in (0, 0.2, 59, 60, 336, 3599, 3600, 7500)] == [
        "0s",
        "1s",
        "59s",
        "1m00s",
        "5m36s",
        "59m59s",
        "1h00m",
        "2h05m",
    ]


def test_a_terminal_gets_the_bar_and_a_disabled_display_prints_nothing():
    from rich.progress import Progress

    terminal = Console(file=io.StringIO(), force_terminal=True)
    with progress(terminal, 30.0) as bar:
        assert isinstance(bar, Progress)
    console, sink = _log()
    with progress(console, 0.0, enabled=False) as bar:
        bar.update(bar.add_task("epoch 1/1", total=2, unit="steps", info=""), advance=1)
    assert sink.getvalue() == ""


def _progress_lines(err: str, description: str, unit: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(rf"{re.escape(description)} \d+(/\d+)? {unit}\b", line)]


def test_train_cache_build_and_tag_print_progress_lines_into_a_log(mscmt, tiny, corpus, tmp_path):
    """stderr is not a terminal here (captured): with --progress-every 0 every step gives a line, through one facility."""
    out = tmp_path / "run"
    every = ["--progress-every", "0"]
    trained = mscmt(train_args(corpus, out, tiny, image="clip-vit-l14", fusion="gated", epochs=2, batch_size=8, extra=every))
    assert trained.code == 0, trained.err
    for epoch in (1, 2):
        lines = _progress_lines(trained.err, f"epoch {epoch}/2", "steps")
        assert lines and re.fullmatch(rf"epoch {epoch}/2 (\d+)/\1 steps loss \d+\.\d{{4}} \S+ steps/s eta 0s", lines[-1]), lines
    assert _progress_lines(trained.err, "image features (clip-vit-l14)", "images")

    built = mscmt(
        ["cache", "build", "--image", "clip-vit-l14", *corpus.args(), "--cache-dir", tmp_path / "c", *tiny.model_path_args(), *every]
    )
    assert built.code == 0 and _progress_lines(built.err, "image features (clip-vit-l14)", "images"), built.err

    tagged = mscmt(
        ["tag", corpus.data_dir / corpus.name / "test.txt", "--model", out, "--images", corpus.images_dir, *tiny.model_path_args(), *every]
    )
    assert tagged.code == 0 and re.search(r"^tagging \d+/\d+ bytes \d+ tagged, 0 bad", tagged.err, re.M), tagged.err


def test_without_the_option_a_short_run_prints_no_progress_line(mscmt, tiny, corpus, tmp_path):
    result = mscmt(train_args(corpus, tmp_path / "run", tiny, epochs=1, extra=["--progress-every", "3600"]))
    assert result.code == 0, result.err
    assert not _progress_lines(result.err, "epoch 1/1", "steps"), result.err


def test_caption_prints_progress_lines_into_a_log(mscmt, tmp_path):
    from tests.tiny_models import make_images

    make_images(tmp_path / "img", ["1", "2", "3"])
    blip = make_tiny_blip_captioner(tmp_path / "blip")
    args = ["caption", tmp_path / "img", "--captioner", blip, "--out", tmp_path / "c.txt", "--device", "cpu", "--max-new-tokens", "4"]
    result = mscmt([*args, "--progress-every", "0", "--batch-size", "1"])
    assert result.code == 0, result.err
    assert len(_progress_lines(result.err, "captioning", "images")) == 3, result.err
