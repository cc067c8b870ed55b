"""Shared helpers of the tests that run ``mscmt train`` on the tiny models (the fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import Corpus, TinyModels


def train_args(
    corpus: Corpus,
    out: Path | str | None,
    tiny: TinyModels | None = None,
    *,
    text: str | None = "bertweet",
    image: str | None = "none",
    fusion: str | None = "none",
    decoder: str | None = None,
    images: bool | None = None,
    epochs: int | None = 1,
    batch_size: int | None = None,
    extra: Sequence[object] = (),
) -> list[str]:
    """The arguments of ``mscmt train`` on the tiny corpus, as strings (for the ``mscmt`` fixture or a subprocess).

    A component, ``out``, ``epochs`` or ``batch_size`` that is None is left out (the command's default); ``images``
    (``--images-dir``) defaults to whether ``image`` reads image files (not ``none``, ``caption``, ``caption-tokens:…``); ``tiny`` adds
    its ``--model-path`` options; ``extra`` comes last, so a repeated option there wins.
    """
    args: list[object] = ["train"]
    for flag, value in (("--text", text), ("--image", image), ("--fusion", fusion), ("--decoder", decoder)):
        if value is not None:
            args += [flag, value]
    reads_images = image is not None and image != "none" and not image.startswith("caption")
    args += corpus.args(images=reads_images if images is None else images)
    for flag, value in (("--out", out), ("--epochs", epochs), ("--batch-size", batch_size)):
        if value is not None:
            args += [flag, value]
    args += tiny.model_path_args() if tiny is not None else []
    return [str(a) for a in [*args, *extra]]


def one_line_error(result, *needles: str, alone: bool = False) -> None:
    """Exit 2, one ``error:`` line on stderr (the last: nothing is printed after the error) containing every needle,
    no traceback; ``alone``: nothing is printed before it either. The one check of a command's one-line error."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err
    assert not alone or len(lines) == 1, result.err
    assert "Traceback" not in result.err and "error: unexpected" not in result.err, result.err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def copy_run(trained_run: Path, dest: Path, drop: tuple[str, ...] = ()) -> Path:
    """A copy of ``trained_run`` at ``dest`` without the files or folders named in ``drop``."""
    import shutil

    shutil.copytree(trained_run, dest)
    for name in drop:
        shutil.rmtree(dest / name) if (dest / name).is_dir() else (dest / name).unlink()
    return dest
