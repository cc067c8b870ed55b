"""A tweet as sub-word windows: what a text encoder's tokenizer side gives, defined without torch.

:class:`EncodedTweet` is re-exported by :mod:`mscmt_cli.model.components`; it lives here so that what
collates a batch for ONNX Runtime (:mod:`mscmt_cli.backends.arrays`) needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EncodedTweet:
    """One tweet as sub-word windows, ready for collation (plain Python, picklable).

    ``windows[k]`` is a list of sub-word ids including the encoder's special
    tokens; ``word_positions[j] = (k, p)`` says that word ``j`` is represented
    by sub-word ``p`` (its first) of window ``k``. ``token_types[k]`` (same
    lengths as ``windows``) are the segment ids of window ``k`` when the
    encoder reads a second segment (a caption) and its model takes
    ``token_type_ids``; None otherwise.
    """

    windows: list[list[int]]
    word_positions: list[tuple[int, int]]
    token_types: list[list[int]] | None = None

    @property
    def n_subwords(self) -> int:
        return sum(len(w) for w in self.windows)
