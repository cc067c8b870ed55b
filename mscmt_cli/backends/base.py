"""What runs the model: the one step of tagging that ``--backend torch|onnx`` swaps (the protocol and its data).

:meth:`Tagger.predict <mscmt_cli.tagging.tagger.Tagger.predict>` collates
tweets into a numpy :class:`~mscmt_cli.backends.arrays.ArrayBatch` and hands it to its
backend (the torch backend makes tensors of it, the onnx backend feeds it as it is): :meth:`Backend.forward` gives the emissions (and the gate), and
:meth:`Backend.decode` the tag paths and per-tag probabilities. Everything
before (tokenizing, image features and their cache, errors per tweet) and
after (entities, scores, the answer) is the same code for every backend.

* :class:`~mscmt_cli.backends.torch_backend.TorchBackend`: the trained ``MNERModel``
  and its decoder (any device).
* :class:`~mscmt_cli.export.runtime.OnnxBackend`: the exported graph in ONNX
  Runtime on the CPU and the decoder in numpy (:mod:`mscmt_cli.backends.decoding`).

This module sits below both :mod:`mscmt_cli.tagging` (which calls a backend) and
:mod:`mscmt_cli.export` (which implements one), and imports no torch: the types
of the protocol are named for the type checker only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mscmt_cli.backends.arrays import ArrayBatch
    from mscmt_cli.model.encoded import EncodedTweet
    from mscmt_cli.model.image_side import ImageSide
    from mscmt_cli.model.spec import ModelSpec

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
        probs: ``(B, T, C)`` float32 per-word label probabilities, or None when not asked for (evaluation).
        gate: ``(B, T)`` float32 mean gate, or None when the fusion has no gate.
        attention: ``(B, T, N)`` float32 attention over the image tokens, or None when the
            fusion does not explain attention.
    """

    paths: list[list[int]]
    probs: npt.NDArray[np.float32] | None
    gate: npt.NDArray[np.float32] | None
    attention: npt.NDArray[np.float32] | None = None


class Backend(Protocol):
    """Runs a batch through the trained part of the model (text encoder, fusion, head) and its decoder."""

    name: str
    #: Where the model runs: a ``torch.device`` for torch, ``"cpu"`` for onnx (``GET /info`` shows it as a string).
    device: Any

    def forward(self, batch: ArrayBatch) -> Emitted:
        """Emissions ``(B, T, C)`` (and the gate) of a collated batch."""
        ...

    def decode(self, emitted: Emitted, marginals: bool = True) -> Scored:
        """Paths and (with ``marginals``) the per-word label probabilities of :meth:`forward`'s output."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``GET /info`` shows about the backend."""
        ...


class Words(Protocol):
    """The tokenizer side of a text encoder: a tweet's words (and caption) to sub-word windows."""

    @property
    def pad_id(self) -> int: ...

    def encode_words(self, words: Sequence[str], context: str | None = None) -> EncodedTweet: ...


class TaggingModel(Protocol):
    """What the tagger needs of a model besides its backend: its ``spec`` (labels, components, context), its
    tokenizer side (``words``), its image side (``image``) and what its fusion explains (``"gate"``,
    ``"attention"``). A loaded torch model (:class:`~mscmt_cli.model.build.Assembled`) is one, and so is an
    exported model read without torch (:class:`~mscmt_cli.export.served.ServedModel`)."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def words(self) -> Words: ...

    @property
    def image(self) -> ImageSide: ...

    @property
    def explains(self) -> frozenset[str]: ...
