"""Where ``mscmt tag`` and ``mscmt explain`` write, checked before anything is opened.

An output never replaces what the run reads. ``--out`` (and stdout, when it
is redirected to a file) is compared with every file the run reads, by
identity (device and inode), so every spelling of the same file is caught:
relative or absolute, ``./a``, ``d/../a``, a symbolic link, a hard link,
``/dev/fd/N``. An existing image file is never overwritten either: images are
named by the input lines, which are not known before they are read. Pages of
``--explain DIR`` (``DIR/line-NNNNNN.html``) are written atomically, so they
never write through a link, and a page name that would replace a file the run
reads or writes is refused up front.

Every refusal is one :class:`MscmtError` naming the option and both paths.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

from mscmt_cli.errors import MscmtError
from mscmt_cli.paths import (
    FileKind,
    Reads,
    check_dir_target,
    check_not_empty,
    looks_like_image,
    make_dir,
    prefix_kind,
    same_file,
)

#: The name of the explain page of input line N (``--explain DIR``).
PAGE_NAME = re.compile(r"line-\d{6,}\.html")
#: Any file that is not a model file, a run's record, a data split or an image.
#: The first bytes of an explain page (mscmt_cli.tagging.explain.render_page).
PAGE_START = b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>mscmt explain'


def _is_tag_output(path: Path) -> bool:
    """An empty file, or one whose first line is a JSON object with a tagged line's ``tokens``, ``tags`` and ``entities``."""
    from mscmt_cli.strict_json import loads

    try:
        with open(path, "rb") as fh:
            first = fh.readline(TAG_LINE_BYTES)
    except OSError:
        return False
    if not first.strip():
        return first == b""
    try:
        record = loads(first)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and {"tokens", "tags", "entities"} <= set(record)


#: How much of a tag output's first line is read to recognise it.
TAG_LINE_BYTES = 16 << 20
#: What ``mscmt tag --out`` writes: an existing file is replaced only when it is an earlier tag output.
TAG_OUTPUT = FileKind("a tag output (JSON Lines with tokens, tags and entities)", _is_tag_output)
#: What ``mscmt explain --out`` writes.
EXPLAIN_PAGE = prefix_kind("an explain page", PAGE_START)
__all__ = ["Reads", "looks_like_image", "same_file"]  # kept here for their callers; defined in mscmt_cli.paths


def _stream_file(stream: object) -> os.stat_result | None:
    """The ``stat`` of a standard stream when it is a regular file (redirected with ``<``/``>``/``>>``), else None."""
    try:
        info = os.fstat(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # replaced streams (tests, notebooks) have no file number
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _stat_is(info: os.stat_result, path: str | os.PathLike[str]) -> bool:
    try:
        other = os.stat(path)
    except (OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (other.st_dev, other.st_ino)


def check_stdin(out: Path | None, option: str = "--out") -> None:
    """Refuse ``--out`` when it is the file redirected to stdin (``mscmt tag - --out a.jsonl < a.jsonl``)."""
    info = _stream_file(sys.stdin)
    if out is not None and info is not None and _stat_is(info, out):
        raise MscmtError(f"{option} {out} is the same file as the input (stdin): refusing to overwrite it")


def check_stdout(reads: Reads) -> None:
    """Refuse writing to stdout when it is redirected to a file the run reads (``mscmt tag a.jsonl >> a.jsonl``
    would read its own output forever)."""
    info = _stream_file(sys.stdout)
    if info is None:
        return
    for what, path in reads:
        if _stat_is(info, path):
            raise MscmtError(f"stdout is redirected to {what} {path}: give another file with --out")


def check_explain_dir(directory: str | os.PathLike[str], writes: Reads, option: str = "--explain") -> Path:
    """``--explain DIR``: a directory (or a name to create), whose page names replace none of ``writes``.

    ``writes`` are the files the run reads or writes (the input, ``--out``). An empty path (``--explain ""``)
    would mean the current directory and is refused.
    """
    directory = check_not_empty(Path(directory), option, "pages")
    if directory.exists() and not directory.is_dir():
        raise MscmtError(f"{option} {directory}: exists and is not a directory")
    check_dir_target(directory, option)  # nothing inside a saved model, an export or a checkpoint
    for what, path in writes:
        if os.path.abspath(path) == os.path.abspath(directory) or same_file(path, directory):
            raise MscmtError(f"{option} {directory} is the same path as {what} {path}")
        parent = Path(os.path.abspath(path)).parent
        if PAGE_NAME.fullmatch(Path(path).name) and same_file(parent, directory):
            raise MscmtError(f"{option} {directory}: its page {Path(path).name} would replace {what} {path}")
    return directory


def make_explain_dir(directory: Path, option: str = "--explain") -> None:
    """Create ``--explain DIR`` (and its parents)."""
    make_dir(directory, option)


def model_files(model: str | os.PathLike[str] | None, what: str = "a file of --model") -> list[tuple[str, Path]]:
    """The files of a trained run directory, its ``model/`` and its ``onnx/`` (what ``--model`` reads), as ``reads``."""
    if model is None:
        return []
    found = []
    for folder in (Path(model), Path(model) / "model", Path(model) / "onnx"):
        try:
            found += [(what, p) for p in folder.iterdir() if p.is_file()]
        except OSError:  # not a directory; loading the model reports it
            continue
    return found
