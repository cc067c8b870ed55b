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
import warnings
from collections.abc import Sequence
from pathlib import Path

from mscmt_cli.errors import MscmtError

#: The name of the explain page of input line N (``--explain DIR``).
PAGE_NAME = re.compile(r"line-\d{6,}\.html")
#: ``(what, path)``: a file the run reads, e.g. ``("the input", Path("a.jsonl"))``.
Reads = Sequence[tuple[str, "str | os.PathLike[str]"]]


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` are the same existing file or directory, however spelled."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # missing, unreadable, NUL in the name
        return False


def looks_like_image(path: Path) -> bool:
    """Whether ``path`` is an existing file whose header Pillow reads as an image (nothing is decoded)."""
    from PIL import Image

    try:
        if not path.is_file():
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path):
                return True
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return True
    except Exception:  # not an image (Pillow raises many types)
        return False


def check_out_dir(out: str | os.PathLike[str], option: str = "--out") -> Path:
    """``out`` as a Path: a file whose directory exists, not an existing directory."""
    out = Path(out)
    if out.is_dir():
        raise MscmtError(f"{option} {out}: is a directory (give a file name)")
    if not out.parent.is_dir():
        raise MscmtError(f"{option} {out}: directory {out.parent} does not exist")
    return out


def check_output(out: str | os.PathLike[str], reads: Reads, option: str = "--out") -> Path:
    """Refuse an output that is an existing directory, one of ``reads`` (any path to it) or an image file."""
    out = check_out_dir(out, option)
    for what, path in reads:
        if same_file(out, path):
            raise MscmtError(f"{option} {out} is the same file as {what} {path}: refusing to overwrite it")
    if looks_like_image(out):
        raise MscmtError(f"{option} {out} is an image file: refusing to overwrite it")
    return out


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

    ``writes`` are the files the run reads or writes (the input, ``--out``).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise MscmtError(f"{option} {directory}: exists and is not a directory")
    for what, path in writes:
        if os.path.abspath(path) == os.path.abspath(directory) or same_file(path, directory):
            raise MscmtError(f"{option} {directory} is the same path as {what} {path}")
        parent = Path(os.path.abspath(path)).parent
        if PAGE_NAME.fullmatch(Path(path).name) and same_file(parent, directory):
            raise MscmtError(f"{option} {directory}: its page {Path(path).name} would replace {what} {path}")
    return directory


def make_explain_dir(directory: Path, option: str = "--explain") -> None:
    """Create ``--explain DIR`` (and its parents)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MscmtError(f"{option} {directory}: cannot create the directory ({err.strerror or err})") from None


def model_files(model: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    """The files of a trained run directory, its ``model/`` and its ``onnx/`` (what ``--model`` reads), as ``reads``."""
    if model is None:
        return []
    found = []
    for folder in (Path(model), Path(model) / "model", Path(model) / "onnx"):
        try:
            found += [("a file of --model", p) for p in folder.iterdir() if p.is_file()]
        except OSError:  # not a directory; loading the model reports it
            continue
    return found
