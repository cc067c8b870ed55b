"""``--backend torch``: the trained :class:`MNERModel` in PyTorch, decoded by its own decoder."""

from __future__ import annotations

from typing import Any

import torch

from mscmt_cli.backends.arrays import ArrayBatch
from mscmt_cli.backends.base import Emitted, Scored
from mscmt_cli.backends.device import autocast
from mscmt_cli.model.mner import MNERModel, MNEROutput


class TorchBackend:
    """The trained :class:`MNERModel` in PyTorch (autocast on CUDA), decoded by its own decoder."""

    name = "torch"

    def __init__(self, model: MNERModel, device: torch.device) -> None:
        self.device = device
        self.model = model.eval().to(device)

    @torch.inference_mode()
    def forward(self, batch: ArrayBatch) -> Emitted:
        with autocast(self.device):
            output = self.model(batch.to_torch().to(self.device))
        gate = output.gate.float().mean(dim=-1) if output.gate is not None else None  # (B, T)
        attention = output.attention.float() if output.attention is not None else None  # (B, T, N)
        return Emitted(output.emissions, output.mask, gate, attention)

    @torch.inference_mode()
    def decode(self, emitted: Emitted, marginals: bool = True) -> Scored:
        output = MNEROutput(emitted.emissions, emitted.mask)
        paths = self.model.decode(output)
        probs = self.model.marginals(output).float().cpu().numpy() if marginals else None  # (B, T, C)
        gate = emitted.gate.cpu().numpy() if emitted.gate is not None else None
        attention = emitted.attention.cpu().numpy() if emitted.attention is not None else None
        return Scored(paths, probs, gate, attention)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
