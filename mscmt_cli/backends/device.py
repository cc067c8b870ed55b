"""The device a model runs on and its autocast: shared by training, evaluation, tagging and captioning."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from mscmt_cli.errors import MscmtError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MscmtError("--device cuda: no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA, nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
