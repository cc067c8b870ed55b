"""BERTweet's word normalisation, one mscmt word at a time, without torch.

What BERTweet's pre-training did to tweets (transformers' ``BertweetTokenizer.normalizeTweet`` /
``normalizeToken``), applied to one word: :func:`bertweet_normalise`; and mscmt's first, narrower
normalisation, :func:`mentions_and_urls`, which models saved before 0.2 keep. The BERTweet text encoder
(:mod:`plugins.text_encoders`) names one of them as its word normaliser, and an ONNX export records that
name, so a tagger without torch normalises words exactly as the trained model did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from mscmt_cli.errors import ModelLoadError

SPECIAL_PUNCTS = {"\u2019": "'", "\u2026": "..."}  # ’ and …
# normalizeTweet's replacements on the normalised tweet, in its order.
_REPLACEMENTS = (
    ("cannot ", "can not "),
    ("n't ", " n't "),
    ("n 't ", " n't "),
    ("ca n't", "can't"),
    ("ai n't", "ain't"),
    ("'m ", " 'm "),
    ("'re ", " 're "),
    ("'s ", " 's "),
    ("'ll ", " 'll "),
    ("'d ", " 'd "),
    ("'ve ", " 've "),
    (" p . m .", "  p.m."),
    (" p . m ", " p.m "),
    (" a . m .", " a.m."),
    (" a . m ", " a.m "),
)
# A clitic that split_tweet cut off ("it" "'s"): inside the tweet BERTweet keeps it whole
# ("It's" -> "It 's"), but its tweet tokenizer splits a lone "'s" into "'" "s".
_CLITIC = re.compile(r"^'(s|m|re|ll|d|ve)$", re.IGNORECASE)


@lru_cache(maxsize=1)
def demojizer() -> Callable[[str], str]:
    try:
        from emoji import demojize
    except ImportError:
        raise ModelLoadError(
            "bertweet: the package 'emoji' is not installed, and BERTweet was pre-trained on emoji "
            "converted to text; run pip install 'emoji>=2'"
        ) from None
    return demojize


@lru_cache(maxsize=1)
def _tweet_tokenizer() -> Any:
    """BERTweet's own tweet tokenizer (transformers', untyped)."""
    from transformers.models.bertweet.tokenization_bertweet import TweetTokenizer

    return TweetTokenizer()  # type: ignore[no-untyped-call]


def bertweet_normalise_token(token: str) -> str:
    """normalizeToken: ``@...`` -> ``@USER``, ``http...``/``www...`` -> ``HTTPURL``, one emoji -> ``:its_name:``."""
    if token.startswith("@"):
        return "@USER"
    if token.lower().startswith(("http", "www")):
        return "HTTPURL"
    if len(token) == 1:
        return SPECIAL_PUNCTS.get(token) or demojizer()(token)
    return token


def bertweet_normalise(word: str) -> str:
    """One word as BERTweet's pre-training normalisation shows it inside a tweet (pieces joined by spaces).

    As normalizeTweet: ``’``/``…`` replaced, the word cut by BERTweet's tweet
    tokenizer (an emoji sequence into its code points: ``👍🏽`` ->
    ``:thumbs_up: :medium_skin_tone:``), each piece normalised by
    :func:`bertweet_normalise_token`, then the contraction and ``p.m.``
    rewrites as for a word with neighbours (``cannot`` -> ``can not``,
    ``don't`` -> ``do n't``). Steps that join two mscmt words (``ca`` ``n't``
    -> ``can't``; ``&amp;``, which split_tweet cuts into three words) cannot
    be done one word at a time and are not.
    """
    for raw, plain in SPECIAL_PUNCTS.items():
        word = word.replace(raw, plain)
    tokens = [word] if _CLITIC.match(word) else _tweet_tokenizer().tokenize(word)
    text = " " + " ".join(bertweet_normalise_token(t) for t in tokens) + " "
    for raw, plain in _REPLACEMENTS:
        text = text.replace(raw, plain)
    return " ".join(text.split())


_URL = re.compile(r"^(https?://|www\.)", re.IGNORECASE)


def mentions_and_urls(word: str) -> str:
    """mscmt's first normalisation (models saved before 0.2): ``@name`` -> ``@USER``, URLs -> ``HTTPURL``, nothing else."""
    if len(word) > 1 and word.startswith("@"):
        return "@USER"
    return "HTTPURL" if _URL.match(word) else word
