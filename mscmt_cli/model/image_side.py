"""What the feature store and the tagger read of a frozen image encoder, without torch.

A frozen image encoder is a torch :class:`~mscmt_cli.model.components.ImageEncoder`, an exported
graph (:class:`~mscmt_cli.export.image_graph.OnnxImageEncoder`) or, for a text-only model,
:class:`~mscmt_cli.model.no_image.NoImage`. :class:`ImageSide` is what all three give;
:func:`feature_identity` keys their features in the cache, and :class:`TokenArrays` is what an
encoder that runs without torch returns from ``encode`` (numpy, the shapes of
:class:`~mscmt_cli.model.components.ImageTokens`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


class ImageSide(Protocol):
    """The image side of a model as the feature store and the tagger read it.

    ``input_kind``: ``"pixels"``, ``"caption"`` or ``"none"``; ``dim``: ``D``; ``max_tokens``: the most
    tokens ``N`` per image; ``token_dtype``: the precision tokens are kept in (a torch dtype, or its
    numpy name); ``grid``/``grid_offset``: where tokens lie on the image (the explain page).
    """

    @property
    def name(self) -> str: ...

    @property
    def input_kind(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def grid(self) -> tuple[int, int] | None: ...

    @property
    def grid_offset(self) -> int: ...

    @property
    def token_dtype(self) -> Any: ...

    def identity(self) -> str: ...

    def token_texts(self, item: Any) -> list[str] | None: ...


def token_dtype_name(encoder: Any) -> str:
    """The numpy name of ``encoder.token_dtype`` (``torch.float16`` and ``"float16"`` both give ``"float16"``)."""
    return str(encoder.token_dtype).removeprefix("torch.")


def token_dtype(encoder: Any) -> np.dtype[Any]:
    """``encoder.token_dtype`` as a numpy dtype: what its tokens are cached and kept in."""
    return np.dtype(token_dtype_name(encoder))


def feature_identity(encoder: Any) -> str:
    """The identity the feature cache keys an encoder's features by.

    A pooled float32 encoder keeps its ``identity()`` unchanged (caches written before image tokens
    existed stay valid); a token encoder's identity gains its token shape and dtype, which its cached
    files have.
    """
    identity = str(encoder.identity())
    dtype = token_dtype_name(encoder)
    if encoder.max_tokens == 1 and dtype == "float32":
        return identity
    return f"{identity}|tokens<={encoder.max_tokens}x{encoder.dim}|{dtype}"


@dataclass(frozen=True)
class TokenArrays:
    """The tokens of ``n`` images as numpy arrays.

    Attributes:
        features: ``(n, N, D)`` float32; rows past an image's real tokens are zeros.
        mask: ``(n, N)`` bool, True on real tokens: real tokens first, then padding, at least one real.
    """

    features: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def check(self, name: str, dim: int, max_tokens: int) -> None:
        """Raise ``ValueError`` naming ``name`` unless the shapes, dtype and mask keep the contract (the rules
        and messages of the torch :meth:`~mscmt_cli.model.components.ImageTokens.check`)."""
        if self.features.ndim != 3 or self.features.shape[2] != dim:
            raise ValueError(f"{name}.features must have shape (n, N, {dim}), got {tuple(self.features.shape)}")
        if self.mask.shape != self.features.shape[:2]:
            raise ValueError(f"{name}.mask must have shape {tuple(self.features.shape[:2])}, got {tuple(self.mask.shape)}")
        if self.mask.dtype != np.bool_:
            raise ValueError(f"{name}.mask must be bool, got {self.mask.dtype}")
        if self.features.shape[1] > max_tokens:
            raise ValueError(f"{name}.features has {self.features.shape[1]} tokens, more than the encoder's max_tokens {max_tokens}")
        if len(self) and (self.mask.shape[1] == 0 or not self.mask[:, 0].all()):
            raise ValueError(f"{name}.mask: the first token of every image must be real")
        if (self.mask[:, 1:] & ~self.mask[:, :-1]).any():
            raise ValueError(f"{name}.mask: rows must be real tokens first, then padding")

    def per_image(self) -> list[npt.NDArray[np.float32]]:
        """Each image's real tokens ``(N_i, D)`` (views of ``features``)."""
        return [self.features[i, :k] for i, k in enumerate(self.mask.sum(axis=1).tolist())]


def join_token_arrays(parts: list[TokenArrays], dim: int) -> TokenArrays:
    """Batches of tokens as one: features zero-padded to the most tokens of any part, ``(n, N, dim)``."""
    width = max([1] + [p.features.shape[1] for p in parts])
    n = sum(len(p) for p in parts)
    features = np.zeros((n, width, dim), np.float32)
    mask = np.zeros((n, width), np.bool_)
    row = 0
    for p in parts:
        features[row : row + len(p), : p.features.shape[1]] = p.features
        mask[row : row + len(p), : p.mask.shape[1]] = p.mask
        row += len(p)
    return TokenArrays(features, mask)
