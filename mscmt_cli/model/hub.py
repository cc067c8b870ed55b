"""Loading pretrained parts by hub id or local directory, with one-line errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from mscmt_cli.errors import ModelLoadError

T = TypeVar("T")


def load_pretrained(component: str, source: str, load: Callable[[str], T]) -> T:
    """Call ``load(source)``; turn any failure into a one-line ``ModelLoadError``.

    ``component`` is the registered name (``bertweet``), so the message can say
    exactly which ``--model-path`` to pass.
    """
    local = Path(source).expanduser()
    is_local = local.exists()
    try:
        return load(str(local) if is_local else source)
    except (OSError, ValueError) as err:
        if is_local:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelLoadError(f"{component}: cannot load local model directory {local}: {detail}") from err
        raise ModelLoadError(
            f"{component}: cannot load {source!r} (the model hub is unreachable and no local copy was given); "
            f"download it elsewhere and pass --model-path {component}=/path/to/{source.split('/')[-1]}"
        ) from err


def resolve_source(component: str, default: str, model_paths: Mapping[str, str]) -> str:
    """The local path given with ``--model-path component=PATH``, else ``default``."""
    path = model_paths.get(component)
    if path is None:
        return default
    if not Path(path).expanduser().exists():
        raise ModelLoadError(f"--model-path {component}={path}: no such file or directory")
    return str(Path(path).expanduser())
