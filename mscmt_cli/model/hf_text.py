"""A text encoder over any Hugging Face encoder, aligned word by word.

Each word is tokenized on its own (results memoised per encoder), so slow
tokenizers such as BERTweet's cost little and every word maps to its first
sub-word exactly. A tweet longer than the encoder's limit is cut into
consecutive windows of whole words; every word still gets a representation.

Caption as context (``context == "caption"``, ITA style): the caption is a
second segment after the tweet, in the encoder's own pair format as its
tokenizer writes it (:class:`PairFormat`: ``[CLS] tweet [SEP] caption [SEP]``
for BERT and MiniLM, ``<s> tweet </s></s> caption </s>`` for BERTweet and
RoBERTa), with ``token_type_ids`` 0 on the tweet and 1 on the caption where
the model takes them. The caption is tokenized as one text by the tokenizer
(as in its own pair encoding); the tweet word by word, as without a caption.
Labels and predictions stay on the tweet's words: every word position points
into the tweet segment. The window rule, with ``N`` the window size
(``--set text.window``, default the encoder's limit) and ``S`` the special
tokens of the pair format (3 for BERT, 4 for RoBERTa):

1. the tweet is cut into consecutive windows of whole words of at most
   ``N - S`` sub-words each (a word longer than that keeps its first
   ``N - S``); the caption never shortens or drops a word of the tweet;
2. the caption goes into the last window (the only one for a tweet of at
   most ``N - S`` sub-words), after the tweet's part, cut to the sub-words
   that still fit: its first ``N - S - t`` sub-words, ``t`` being the tweet
   sub-words in that window; the rest of the caption is dropped;
3. the earlier windows of a long tweet hold the tweet alone, in the single
   format (``[CLS] part [SEP]``).

So no window exceeds ``N``. A tweet without a caption reads the empty
caption: the pair format with an empty second segment (``[CLS] tweet [SEP]
[SEP]``), as a caption model reads a missing caption as "".
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from pydantic import Field
from transformers import AutoConfig, AutoModel, AutoTokenizer

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.components import ComponentParams, EncodedTweet, TextBatch, TextEncoder
from mscmt_cli.model.hub import load_pretrained

# Distinct words memoised before the memo (and a slow tokenizer's own per-word
# cache) is emptied, so an endless stream of tweets keeps memory bounded.
MAX_WORD_MEMO = 20_000
# RoBERTa-style position ids start after the padding index.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}


#: The two texts whose pair encoding shows a tokenizer's pair format (any two non-empty texts would do).
_PROBE = ("tweet", "caption")


@dataclass(frozen=True)
class PairFormat:
    """How an encoder joins two sequences ``A`` and ``B``: ``prefix + A + middle + B + suffix``.

    Read off the tokenizer's own pair encoding (:func:`pair_format`), with the
    segment id (``token_type_ids``) of every special token and of each sequence.
    """

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    first_type: int
    second_type: int

    @property
    def n_special(self) -> int:
        """Special tokens the pair adds (3 for BERT, 4 for RoBERTa)."""
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    def join(self, first: Sequence[int], second: Sequence[int]) -> tuple[list[int], list[int]]:
        """The ids of ``first`` and ``second`` as one input, and their segment ids."""
        ids = [*self.prefix, *first, *self.middle, *second, *self.suffix]
        types = [
            *self.prefix_types,
            *[self.first_type] * len(first),
            *self.middle_types,
            *[self.second_type] * len(second),
            *self.suffix_types,
        ]
        return ids, types


def _find(haystack: Sequence[int], needle: Sequence[int], start: int) -> int:
    """First index ``>= start`` where ``needle`` occurs in ``haystack`` as a run, or -1."""
    for i in range(start, len(haystack) - len(needle) + 1):
        if list(haystack[i : i + len(needle)]) == list(needle):
            return i
    return -1


def pair_format(tokenizer: Any) -> PairFormat | None:
    """The pair format of ``tokenizer``, read off its own encoding of two probe texts; None when it has none."""
    try:
        first = list(tokenizer(_PROBE[0], add_special_tokens=False)["input_ids"])
        second = list(tokenizer(_PROBE[1], add_special_tokens=False)["input_ids"])
        encoded = tokenizer(_PROBE[0], _PROBE[1], return_token_type_ids=True)
    except (TypeError, ValueError, KeyError, NotImplementedError):
        return None
    ids = [int(i) for i in encoded["input_ids"]]
    types = [int(t) for t in (encoded.get("token_type_ids") or [0] * len(ids))]
    a = _find(ids, first, 0) if first else -1
    b = _find(ids, second, a + len(first)) if a >= 0 and second else -1
    if b < 0 or len(types) != len(ids):
        return None
    a_end, b_end = a + len(first), b + len(second)
    if len(set(types[a:a_end])) != 1 or len(set(types[b:b_end])) != 1:
        return None
    return PairFormat(
        tuple(ids[:a]),
        tuple(ids[a_end:b]),
        tuple(ids[b_end:]),
        tuple(types[:a]),
        tuple(types[a_end:b]),
        tuple(types[b_end:]),
        types[a],
        types[b],
    )


class HFTextParams(ComponentParams):
    """Parameters of every Hugging Face text encoder."""

    window: int | None = Field(
        None,
        ge=4,
        description="most sub-words per encoder window, special tokens included "
        "(default: the encoder's own limit; longer tweets span several windows)",
    )


class HFTextEncoder(TextEncoder):
    """Word-level encoder over ``AutoModel``; subclasses set ``name`` and ``default_source``."""

    model_class: ClassVar[Any] = AutoModel
    config_class: ClassVar[Any] = AutoConfig  # reads the config of a model built without pretrained weights
    Params = HFTextParams
    #: Parts of the checkpoint that word vectors never use (frozen, so every trainable parameter learns).
    unused_parameters: ClassVar[tuple[str, ...]] = ("pooler.",)

    def __init__(self, source: str, pretrained: bool = True, params: HFTextParams | None = None) -> None:
        super().__init__()
        self.tokenizer = load_pretrained(self.name, source, AutoTokenizer.from_pretrained)
        self.model: Any = self._load_model(source, pretrained)  # a transformers model (untyped)
        for name, param in self.model.named_parameters():
            if any(part in name for part in self.unused_parameters):
                param.requires_grad_(False)
        config = self.model.config
        self.hidden_size = int(config.hidden_size)
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        window = (params or HFTextParams()).window
        self.max_subwords = self._max_subwords(config) if window is None else min(window, self._max_subwords(config))
        self._prefix = [
            i
            for i in (self.tokenizer.cls_token_id if self.tokenizer.cls_token_id is not None else self.tokenizer.bos_token_id,)
            if i is not None
        ]
        self._suffix = [
            i
            for i in (self.tokenizer.sep_token_id if self.tokenizer.sep_token_id is not None else self.tokenizer.eos_token_id,)
            if i is not None
        ]
        self._memo: dict[str, list[int]] = {}
        self._pair: PairFormat | None = None
        # segment ids go in only where the tokenizer writes them, the model has more than one and takes them
        self._token_types = (
            "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
            and int(getattr(config, "type_vocab_size", 0) or 0) > 1
            and "token_type_ids" in inspect.signature(self.model.forward).parameters
        )

    def _load_model(self, source: str, pretrained: bool) -> Any:
        if pretrained:
            return load_pretrained(self.name, source, self.model_class.from_pretrained)
        config = load_pretrained(self.name, source, self.config_class.from_pretrained)
        return self.model_class.from_config(config) if hasattr(self.model_class, "from_config") else self.model_class(config)

    def _max_subwords(self, config: Any) -> int:
        limit = int(getattr(config, "max_position_embeddings", 512)) - _POSITION_OFFSET.get(config.model_type, 0)
        tok_limit = getattr(self.tokenizer, "model_max_length", limit) or limit
        return max(4, min(limit, int(tok_limit) if tok_limit < 1e6 else limit))

    def normalise_word(self, word: str) -> str:
        """How a word is shown to the tokenizer (BERTweet overrides this)."""
        return word

    def word_ids(self, word: str) -> list[int]:
        """Sub-word ids of one word (never empty: unknown words give the unk id)."""
        ids = self._memo.get(word)
        if ids is None:
            if len(self._memo) >= MAX_WORD_MEMO:
                self._memo.clear()
                self._clear_tokenizer_cache(0)
            pieces = self.tokenizer.tokenize(self.normalise_word(word))
            found = cast(list[int | None], self.tokenizer.convert_tokens_to_ids(pieces)) if pieces else []
            ids = [int(i) for i in found if i is not None] or [int(self.tokenizer.unk_token_id or 0)]
            self._memo[word] = ids
        return ids

    def _clear_tokenizer_cache(self, above: int) -> None:
        """Empty a slow tokenizer's own cache (BERTweet's BPE cache) once it holds more than ``above`` entries."""
        cache = getattr(self.tokenizer, "cache", None)
        if isinstance(cache, dict) and len(cache) > above:
            cache.clear()

    def caption_ids(self, caption: str) -> list[int]:
        """Sub-word ids of a caption, tokenized as one text (as the tokenizer's pair encoding does), at most a window's worth."""
        ids = self.tokenizer(caption, add_special_tokens=False, truncation=True, max_length=self.max_subwords)["input_ids"]
        self._clear_tokenizer_cache(MAX_WORD_MEMO)
        return [int(i) for i in ids]

    @property
    def takes_token_types(self) -> bool:
        """Segment ids go in with a caption (``context == "caption"``) where the model takes them (BERT, MiniLM; not RoBERTa)."""
        return self.context == "caption" and self._token_types

    def pair_format(self) -> PairFormat:
        """This encoder's pair format (:func:`pair_format` of its tokenizer); ``MscmtError`` when it has none."""
        if self._pair is None:
            found = pair_format(self.tokenizer)
            if found is None:
                raise MscmtError(
                    f"--context caption: the tokenizer of text encoder {self.name!r} has no pair format (it does not join two texts)"
                )
            self._pair = found
        return self._pair

    def check_context(self, context: str) -> None:
        """``"caption"`` needs a pair format and a window with room for the tweet beside its special tokens."""
        if context != "caption":
            super().check_context(context)
            return
        special = self.pair_format().n_special
        if self.max_subwords - special < 1:
            raise MscmtError(
                f"--context caption: a window of {self.max_subwords} sub-words leaves no room for the tweet beside the "
                f"{special} special tokens of {self.name!r}'s pair format; raise --set text.window"
            )

    def _parts(self, words: Sequence[str], room: int) -> tuple[list[list[int]], list[tuple[int, int]]]:
        """The tweet's sub-words cut into consecutive parts of whole words, at most ``room`` each, and each
        word's ``(part, offset of its first sub-word in the part)`` (a word longer than ``room`` keeps its first ``room``)."""
        parts: list[list[int]] = []
        positions: list[tuple[int, int]] = []
        current: list[int] = []
        for word in words:
            ids = self.word_ids(word)[:room]
            if current and len(current) + len(ids) > room:
                parts.append(current)
                current = []
            positions.append((len(parts), len(current)))
            current.extend(ids)
        parts.append(current)
        return parts, positions

    def encode_words(self, words: Sequence[str], context: str | None = None) -> EncodedTweet:
        """The tweet's windows; with ``context`` (the caption) in the pair format, per the module's window rule."""
        if (context is not None) != (self.context == "caption"):
            raise ValueError(
                f"context: this encoder reads {'a caption beside each tweet' if self.context == 'caption' else 'the tweet alone'} "
                f"(context {self.context!r}), got {'no caption' if context is None else 'a caption'}"
            )
        if context is None:
            parts, positions = self._parts(words, self.max_subwords - len(self._prefix) - len(self._suffix))
            windows = [self._prefix + part + self._suffix for part in parts]
            return EncodedTweet(windows, [(k, len(self._prefix) + p) for k, p in positions])
        pair = self.pair_format()
        room = self.max_subwords - pair.n_special
        parts, positions = self._parts(words, room)
        last = len(parts) - 1
        windows = [self._prefix + part + self._suffix for part in parts[:last]]
        joined, types = pair.join(parts[last], self.caption_ids(context)[: room - len(parts[last])])
        windows.append(joined)
        offset = [len(self._prefix)] * last + [len(pair.prefix)]
        token_types = [[0] * len(w) for w in windows[:last]] + [types] if self.takes_token_types else None
        return EncodedTweet(windows, [(k, offset[k] + p) for k, p in positions], token_types)

    def forward(self, batch: TextBatch) -> torch.Tensor:
        types = {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **types)
        hidden = out.last_hidden_state  # (W, L, H)
        flat = hidden.reshape(-1, hidden.size(-1))
        words: torch.Tensor = flat[batch.word_index]  # (B, T, H)
        return words

    def save_architecture(self, directory: Path) -> None:
        from mscmt_cli.paths import save_pretrained

        save_pretrained(self.model.config, directory)
        save_pretrained(self.tokenizer, directory)
