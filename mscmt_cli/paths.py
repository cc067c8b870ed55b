"""Checks on the paths mscmt writes to, made before anything is loaded or written.

``Path("")`` is ``Path(".")``: an empty option (``--out ""``, ``MSCMT_OUT=``)
would silently mean the current directory, so an empty or ``.`` path is
refused wherever mscmt creates or deletes things. A target must also be of the
right kind: a directory option refuses an existing file (or a path inside one),
a file option refuses an existing directory.
"""

from __future__ import annotations

from pathlib import Path

from mscmt_cli.errors import MscmtError


def check_not_empty(path: Path | str | None, option: str, example: str = "runs/mine") -> Path:
    """``path`` as a Path; refuses None, ``""`` and ``"."`` (which all mean "here" by accident)."""
    if path is None or str(path).strip() == "" or Path(path) == Path("."):
        raise MscmtError(f"{option}: an empty path (or '.') means the current directory; pass a name of its own (e.g. {option} {example})")
    return Path(path)


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a directory (so nothing can be made below it)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def check_dir_target(path: Path | str | None, option: str) -> Path:
    """A directory to create or fill: not empty, not an existing file, not below a file."""
    path = check_not_empty(path, option)
    if path.exists() and not path.is_dir():
        raise MscmtError(f"{option} {path}: is a file, not a directory; pass a directory name")
    blocker = _file_above(path)
    if blocker is not None:
        raise MscmtError(f"{option} {path}: {blocker} is a file, so no directory can be made inside it")
    return path


def check_file_target(path: Path | str | None, option: str) -> Path:
    """A file to write: not empty, not an existing directory, not below a file."""
    path = check_not_empty(path, option, "scores.json")
    if path.is_dir():
        raise MscmtError(f"{option} {path}: is a directory; pass a file name (e.g. {path / 'scores.json'})")
    blocker = _file_above(path)
    if blocker is not None:
        raise MscmtError(f"{option} {path}: {blocker} is a file, so no file can be made inside it")
    return path


def listing(names: list[str], limit: int = 4) -> str:
    """``a, b, c, d and 3 more`` for messages that name what a directory holds."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
