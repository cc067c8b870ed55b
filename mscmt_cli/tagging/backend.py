"""What runs the model: the one step of tagging that ``--backend torch|onnx`` swaps.

:meth:`Tagger.predict <mscmt_cli.tagging.tagger.Tagger.predict>` collates
tweets into an :class:`~mscmt_cli.model.mner.MNERBatch` and hands it to its
backend: :meth:`Backend.forward` gives the emissions (and the gate), and
:meth:`Backend.decode` the tag paths and per-tag probabilities. Everything
before (tokenizing, image features and their cache, errors per tweet) and
after (entities, scores, the answer) is the same code for every backend.

* :class:`TorchBackend`: the trained ``MNERModel`` and its decoder (any device).
* :class:`~mscmt_cli.export.runtime.OnnxBackend`: the exported graph in ONNX
  Runtime on the CPU and the decoder in numpy (:mod:`mscmt_cli.export.decoding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from mscmt_cli.backends.device import autocast
from mscmt_cli.model.mner import MNERBatch, MNERModel, MNEROutput

BACKENDS = ("torch", "onnx")


@dataclass
class Emitted:
    """A batch's emissions, in the backend's own array type.

    Attributes:
        emissions: ``(B, T, C)`` label scores (a tensor for torch, an array for onnx).
        mask: ``(B, T)`` bool, True on real words.
        gate: ``(B, T)`` the fusion's gate averaged over hidden dims, or None.
        attention: ``(B, T, N)`` the fusion's attention over the image tokens, or None.
    """

    emissions: Any
    mask: Any
    gate: Any = None
    attention: Any = None


@dataclass
class Scored:
    """A decoded batch.

    Attributes:
        paths: the best label ids of each tweet (as long as the tweet).
        probs: ``(B, T, C)`` float32 per-word label probabilities.
        gate: ``(B, T)`` float32 mean gate, or None when the fusion has no gate.
        attention: ``(B, T, N)`` float32 attention over the image tokens, or None when the
            fusion does not explain attention.
    """

    paths: list[list[int]]
    probs: npt.NDArray[np.float32]
    gate: npt.NDArray[np.float32] | None
    attention: npt.NDArray[np.float32] | None = None


class Backend(Protocol):
    """Runs a batch through the trained part of the model (text encoder, fusion, head) and its decoder."""

    name: str
    device: torch.device

    def forward(self, batch: MNERBatch) -> Emitted:
        """Emissions ``(B, T, C)`` (and the gate) of a collated batch."""
        ...

    def decode(self, emitted: Emitted) -> Scored:
        """Paths and marginals of :meth:`forward`'s output."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``GET /info`` shows about the backend."""
        ...


class TorchBackend:
    """The trained :class:`MNERModel` in PyTorch (autocast on CUDA), decoded by its own decoder."""

    name = "torch"

    def __init__(self, model: MNERModel, device: torch.device) -> None:
        self.device = device
        self.model = model.eval().to(device)

    @torch.inference_mode()
    def forward(self, batch: MNERBatch) -> Emitted:
        with autocast(self.device):
            output = self.model(batch.to(self.device))
        gate = output.gate.float().mean(dim=-1) if output.gate is not None else None  # (B, T)
        attention = output.attention.float() if output.attention is not None else None  # (B, T, N)
        return Emitted(output.emissions, output.mask, gate, attention)

    @torch.inference_mode()
    def decode(self, emitted: Emitted) -> Scored:
        output = MNEROutput(emitted.emissions, emitted.mask)
        paths = self.model.decode(output)
        probs = self.model.marginals(output).float().cpu().numpy()  # (B, T, C)
        gate = emitted.gate.cpu().numpy() if emitted.gate is not None else None
        attention = emitted.attention.cpu().numpy() if emitted.attention is not None else None
        return Scored(paths, probs, gate, attention)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
