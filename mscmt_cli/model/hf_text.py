"""A text encoder over any Hugging Face encoder, aligned word by word.

Each word is tokenized on its own (results memoised per encoder), so slow
tokenizers such as BERTweet's cost little and every word maps to its first
sub-word exactly. A tweet longer than the encoder's limit is cut into
consecutive windows of whole words; every word still gets a representation.
The tokenizer side (words to windows, by the rule below) is
:class:`~mscmt_cli.model.word_tokens.WordTokens`, which imports no torch.

Caption as context (``context == "caption"``, ITA style): the caption is a
second segment after the tweet, in the encoder's own pair format as its
tokenizer writes it (:class:`~mscmt_cli.model.word_tokens.PairFormat`: ``[CLS] tweet [SEP] caption [SEP]``
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import Field
from transformers import AutoConfig, AutoModel, AutoTokenizer

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.components import ComponentParams, EncodedTweet, TextBatch, TextEncoder
from mscmt_cli.model.hub import load_pretrained
from mscmt_cli.model.word_tokens import PairFormat, WordTokens

# RoBERTa-style position ids start after the padding index.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}


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
    #: How a word is shown to the tokenizer (None: as it is); a module-level function, which an ONNX export
    #: records by name so that a tagger without torch normalises as the model did (BERTweet sets one).
    normaliser: Callable[[str], str] | None = None
    #: Parts of the checkpoint that word vectors never use (frozen, so every trainable parameter learns).
    unused_parameters: ClassVar[tuple[str, ...]] = ("pooler.",)

    def __init__(self, source: str, pretrained: bool = True, params: HFTextParams | None = None) -> None:
        super().__init__()
        tokenizer = load_pretrained(self.name, source, AutoTokenizer.from_pretrained)
        self.model: Any = self._load_model(source, pretrained)  # a transformers model (untyped)
        for name, param in self.model.named_parameters():
            if any(part in name for part in self.unused_parameters):
                param.requires_grad_(False)
        config = self.model.config
        self.hidden_size = int(config.hidden_size)
        window = (params or HFTextParams()).window
        limit = self._max_subwords(config, tokenizer)
        # segment ids go in only where the tokenizer writes them, the model has more than one and takes them
        token_types = (
            "token_type_ids" in getattr(tokenizer, "model_input_names", ())
            and int(getattr(config, "type_vocab_size", 0) or 0) > 1
            and "token_type_ids" in inspect.signature(self.model.forward).parameters
        )
        #: The tokenizer side (torch-free): word windows, pair format, the word normalisation of ``normalise_word``.
        self.words = WordTokens(
            tokenizer, limit if window is None else min(window, limit), self.name, self.normalise_word, token_types=token_types
        )
        self.pad_id = self.words.pad_id

    @property
    def tokenizer(self) -> Any:
        """The transformers tokenizer (untyped)."""
        return self.words.tokenizer

    @property
    def max_subwords(self) -> int:
        """Most sub-words per window, special tokens included."""
        return self.words.max_subwords

    @max_subwords.setter
    def max_subwords(self, value: int) -> None:
        self.words.max_subwords = value

    @property  # TextEncoder.context, kept on the tokenizer side
    def context(self) -> str:
        return self.words.context

    @context.setter
    def context(self, value: str) -> None:
        self.words.context = value

    def _load_model(self, source: str, pretrained: bool) -> Any:
        if pretrained:
            return load_pretrained(self.name, source, self.model_class.from_pretrained)
        config = load_pretrained(self.name, source, self.config_class.from_pretrained)
        return self.model_class.from_config(config) if hasattr(self.model_class, "from_config") else self.model_class(config)

    def _max_subwords(self, config: Any, tokenizer: Any) -> int:
        limit = int(getattr(config, "max_position_embeddings", 512)) - _POSITION_OFFSET.get(config.model_type, 0)
        tok_limit = getattr(tokenizer, "model_max_length", limit) or limit
        return max(4, min(limit, int(tok_limit) if tok_limit < 1e6 else limit))

    def normalise_word(self, word: str) -> str:
        """How a word is shown to the tokenizer: through :attr:`normaliser`, else as it is."""
        return word if self.normaliser is None else self.normaliser(word)

    def word_ids(self, word: str) -> list[int]:
        """Sub-word ids of one word (never empty: unknown words give the unk id)."""
        return self.words.word_ids(word)

    def caption_ids(self, caption: str) -> list[int]:
        """Sub-word ids of a caption, tokenized as one text, at most a window's worth."""
        return self.words.caption_ids(caption)

    @property
    def takes_token_types(self) -> bool:
        """Segment ids go in with a caption (``context == "caption"``) where the model takes them (BERT, MiniLM; not RoBERTa)."""
        return self.words.takes_token_types

    def pair_format(self) -> PairFormat:
        """This encoder's pair format (:func:`~mscmt_cli.model.word_tokens.pair_format` of its tokenizer); ``MscmtError`` when it has none."""
        return self.words.pair_format()

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

    def encode_words(self, words: Sequence[str], context: str | None = None) -> EncodedTweet:
        """The tweet's windows; with ``context`` (the caption) in the pair format, per the module's window rule."""
        return self.words.encode_words(words, context)

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
