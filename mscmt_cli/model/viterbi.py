"""The last step of Viterbi decoding, shared by the torch decoders and the numpy decoding of exported models."""

from __future__ import annotations

from collections.abc import Sequence


def backtrack(last: Sequence[int], lengths: Sequence[int], back: Sequence[Sequence[Sequence[int]]]) -> list[list[int]]:
    """Best paths from Viterbi's back-pointers.

    Args:
        last: ``(B,)`` the best tag at each tweet's last word.
        lengths: ``(B,)`` words per tweet (at least 1).
        back: ``(T - 1, B, C)`` back-pointers: ``back[t][b][c]`` is the best tag at word
            ``t`` given tag ``c`` at word ``t + 1``.

    Returns:
        Each tweet's tag ids, as long as the tweet.
    """
    paths = []
    for b, (tag, n) in enumerate(zip(last, lengths)):
        path = [tag]
        for t in range(n - 2, -1, -1):
            tag = back[t][b][tag]
            path.append(tag)
        paths.append(path[::-1])
    return paths
