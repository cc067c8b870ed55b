"""One tweet to tag: its tokens and the string their character offsets refer to.

A tweet arrives in one of three shapes:

* ``text`` only: the raw tweet is split by the tweet-aware tokenizer
  (:mod:`mscmt_cli.data.tweet_tokenize`, whose module docstring lists the
  rules); offsets refer to ``text``.
* ``tokens`` and ``text``: the tokens are located in ``text`` left to right
  (:func:`~mscmt_cli.data.tweet_tokenize.align_tokens`); a token that cannot
  be found is an error. Offsets refer to ``text``.
* ``tokens`` only: offsets refer to the tokens joined by single spaces
  (``" ".join(tokens)``), the string :attr:`Doc.text` holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mscmt_cli.data.entities import joined_offsets
from mscmt_cli.data.tweet_tokenize import align_tokens, split_tweet


class InputError(ValueError):
    """A tweet that cannot be tagged; the message says why (one line)."""


@dataclass(frozen=True)
class Doc:
    """A tweet ready to tag.

    Attributes:
        text: the string the offsets index (the original text, or the joined tokens).
        tokens: the words given to the model.
        offsets: ``(start, end)`` of each token in ``text`` (``end`` exclusive).
        has_text: False when ``text`` was rebuilt from ``tokens``.
    """

    text: str
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    has_text: bool = True


def _check_tokens(tokens: Any) -> list[str]:
    if not isinstance(tokens, (list, tuple)):
        raise InputError(f"'tokens' must be a list of strings, got {type(tokens).__name__}")
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise InputError(f"'tokens'[{i}] must be a string, got {type(token).__name__}")
        if not token.strip():
            raise InputError(f"'tokens'[{i}] is empty or only whitespace")
    if not tokens:
        raise InputError("empty tweet: 'tokens' is an empty list")
    return list(tokens)


def make_doc(text: Any = None, tokens: Any = None) -> Doc:
    """Validate ``text`` and/or ``tokens`` and build a :class:`Doc` (raises :class:`InputError`)."""
    if text is None and tokens is None:
        raise InputError("no tweet: give 'text' (a string) or 'tokens' (a list of strings)")
    if text is not None and not isinstance(text, str):
        raise InputError(f"'text' must be a string, got {type(text).__name__}")
    if tokens is None:
        assert text is not None  # one of the two is given
        spans = split_tweet(text)
        if not spans:
            raise InputError("empty tweet: 'text' has no tokens" if text.strip() else "empty tweet: 'text' is blank")
        return Doc(text, tuple(s.text for s in spans), tuple((s.start, s.end) for s in spans))
    words = _check_tokens(tokens)
    if text is None:
        joined, offsets = joined_offsets(words)
        return Doc(joined, tuple(words), tuple(offsets), has_text=False)
    located = align_tokens(text, words)
    for i, span in enumerate(located):
        if span is None:
            raise InputError(f"'tokens'[{i}] {words[i][:40]!r} does not occur in 'text' after the tokens before it")
    return Doc(text, tuple(words), tuple(located))  # type: ignore[arg-type]


def doc_from_value(value: str | Sequence[str]) -> Doc:
    """A raw tweet string, or a list of tokens, as a :class:`Doc`."""
    if isinstance(value, str):
        return make_doc(text=value)
    return make_doc(tokens=value)
