"""A text encoder over any Hugging Face encoder, aligned word by word.

Each word is tokenized on its own (results memoised per encoder), so slow
tokenizers such as BERTweet's cost little and every word maps to its first
sub-word exactly. A tweet longer than the encoder's limit is cut into
consecutive windows of whole words; every word still gets a representation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from pydantic import Field
from transformers import AutoConfig, AutoModel, AutoTokenizer

from mscmt_cli.model.components import ComponentParams, EncodedTweet, TextBatch, TextEncoder
from mscmt_cli.model.hub import load_pretrained

# Distinct words memoised before the memo (and a slow tokenizer's own per-word
# cache) is emptied, so an endless stream of tweets keeps memory bounded.
MAX_WORD_MEMO = 20_000
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
                cache = getattr(self.tokenizer, "cache", None)
                if isinstance(cache, dict):
                    cache.clear()
            pieces = self.tokenizer.tokenize(self.normalise_word(word))
            found = cast(list[int | None], self.tokenizer.convert_tokens_to_ids(pieces)) if pieces else []
            ids = [int(i) for i in found if i is not None] or [int(self.tokenizer.unk_token_id or 0)]
            self._memo[word] = ids
        return ids

    def encode_words(self, words: Sequence[str]) -> EncodedTweet:
        room = self.max_subwords - len(self._prefix) - len(self._suffix)
        windows: list[list[int]] = []
        positions: list[tuple[int, int]] = []
        current: list[int] = []
        for word in words:
            ids = self.word_ids(word)[:room]
            if current and len(current) + len(ids) > room:
                windows.append(self._prefix + current + self._suffix)
                current = []
            positions.append((len(windows), len(self._prefix) + len(current)))
            current.extend(ids)
        windows.append(self._prefix + current + self._suffix)
        return EncodedTweet(windows, positions)

    def forward(self, batch: TextBatch) -> torch.Tensor:
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        hidden = out.last_hidden_state  # (W, L, H)
        flat = hidden.reshape(-1, hidden.size(-1))
        words: torch.Tensor = flat[batch.word_index]  # (B, T, H)
        return words

    def save_architecture(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
