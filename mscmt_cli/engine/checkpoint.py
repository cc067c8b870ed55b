"""Atomic training-state checkpoints for exact resume.

``<run>/checkpoint/`` holds ``model.safetensors`` (the last epoch's weights)
and ``state.pt`` (optimiser, scheduler, RNG states, early-stopping counters,
metrics so far). Both are written into a temporary directory that then
replaces the old one with ``os.replace``, so a kill at any instant leaves
either the old or the new state. ``state.pt`` is read with
``weights_only=True``: loading it never runs code.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from mscmt_cli.errors import MscmtError
from mscmt_cli.paths import atomic_dir, recover_dir, save_tensors, save_torch

CHECKPOINT_DIR = "checkpoint"
OLD_CHECKPOINT = ".checkpoint.old"  # where the previous checkpoint waits between the two renames


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Hold back Ctrl-C until the block is done (so a state write completes)."""
    received: list[Any] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *a: received.append(a))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def save_checkpoint(run_dir: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Write weights and state atomically to ``run_dir/checkpoint``."""
    with atomic_dir(Path(run_dir) / CHECKPOINT_DIR, "checkpoint", old_name=OLD_CHECKPOINT) as tmp:
        save_tensors(tmp / "model.safetensors", {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
        save_torch(tmp / "state.pt", state)


def recover_checkpoint(run_dir: Path) -> None:
    """If a kill fell between the two renames, put the old state back."""
    recover_dir(Path(run_dir) / CHECKPOINT_DIR, Path(run_dir) / OLD_CHECKPOINT)


def check_resumable(run_dir: Path | str | None) -> Path:
    """The run directory to resume, refused early when it holds no finished epoch."""
    if run_dir is None or str(run_dir) == "":
        raise MscmtError("no run directory to resume: pass --resume DIR")
    path = Path(run_dir)
    if not path.is_dir():
        raise MscmtError(f"--resume {path}: not a run directory ({'a file' if path.exists() else 'does not exist'})")
    recover_checkpoint(path)
    if not (path / CHECKPOINT_DIR / "state.pt").is_file():
        raise MscmtError(f"{path}: nothing to resume (no {CHECKPOINT_DIR}/state.pt; no epoch has finished yet)")
    return path


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, state) of the last completed epoch."""
    recover_checkpoint(run_dir)
    target = Path(run_dir) / CHECKPOINT_DIR
    if not (target / "state.pt").is_file():
        raise MscmtError(f"{run_dir}: nothing to resume (no {CHECKPOINT_DIR}/state.pt; no epoch has finished yet)")
    try:
        weights = load_file(str(target / "model.safetensors"))
        state = torch.load(target / "state.pt", map_location="cpu", weights_only=True)
    except Exception as err:
        raise MscmtError(f"{target}: unreadable checkpoint ({type(err).__name__}: {err})") from None
    return weights, state
