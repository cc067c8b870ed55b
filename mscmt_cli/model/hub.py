"""Loading pretrained parts by hub id or local directory, with one-line errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from mscmt_cli.errors import ModelLoadError

T = TypeVar("T")


def load_pretrained(component: str, source: str, load: Callable[[str], T], *, local_option: str | None = None) -> T:
    """Call ``load(source)``; turn any failure into a one-line ``ModelLoadError``.

    ``component`` is the registered name (``bertweet``), so the message can say
    exactly which ``--model-path`` to pass; ``local_option`` is the option that
    takes a local copy instead, when it is not ``--model-path`` (``--captioner``).
    """
    local = Path(source).expanduser()
    is_local = local.exists()
    try:
        with quiet_transformers():
            return load(str(local) if is_local else source)
    except (OSError, ValueError) as err:
        if is_local:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelLoadError(f"{component}: cannot load local model directory {local}: {detail}") from err
        how = f"{local_option} " if local_option else f"--model-path {component}="
        raise ModelLoadError(
            f"{component}: cannot load {source!r} (the model hub is unreachable and no local copy was given); "
            f"download it elsewhere and pass {how}/path/to/{source.split('/')[-1]}"
        ) from err


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while a part loads, then as they were.

    Its multi-line "LOAD REPORT" tables (e.g. the text tower's keys UNEXPECTED when a full CLIP
    checkpoint is loaded as its vision tower, which is what we ask for) reached the stderr of
    every ``Tagger.from_pretrained`` caller; the CLI had quieted them only for itself.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(hf_logging.ERROR)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def resolve_source(component: str, default: str, model_paths: Mapping[str, str]) -> str:
    """The local path given with ``--model-path component=PATH``, else ``default``."""
    path = model_paths.get(component)
    if path is None:
        return default
    if not Path(path).expanduser().exists():
        raise ModelLoadError(f"--model-path {component}={path}: no such file or directory")
    return str(Path(path).expanduser())


def weights_fingerprint(source: str, model: torch.nn.Module) -> str:
    """A cheap identity for a model's weights.

    For a local weights file, or a local directory's weight files: names,
    sizes and the first and last MiB of each. Otherwise (or when none are
    found): a hash of every parameter's shape and a strided sample of its values.
    """
    h = hashlib.sha256()
    path = Path(source)
    if path.is_file():
        files = [path]
    else:
        files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    for f in files:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(1 << 20)
            fh.seek(max(0, size - (1 << 20)))
            tail = fh.read()
        h.update(f"{f.name}:{size}".encode() + head + tail)
    if not files:
        for name, p in model.state_dict().items():
            flat = p.detach().flatten()
            h.update(f"{name}{tuple(p.shape)}".encode() + flat[:: max(1, flat.numel() // 64)].float().numpy().tobytes())
    return h.hexdigest()[:16]


def config_digest(data: Any) -> str:
    """Short hash of a JSON-able configuration (preprocessing, transforms)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
