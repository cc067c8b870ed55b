"""The tokenizer side of a Hugging Face text encoder, without torch.

:class:`WordTokens` turns a tweet's words (and, for ``context == "caption"``,
its caption) into sub-word windows (:class:`~mscmt_cli.model.encoded.EncodedTweet`)
by the window rule of :mod:`mscmt_cli.model.hf_text`, which uses it for its
``encode_words``. It lives apart from the encoder's model so that tagging with an
exported ONNX graph tokenizes exactly as the torch model does without importing torch.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.encoded import EncodedTweet

# Distinct words memoised before the memo (and a slow tokenizer's own per-word
# cache) is emptied, so an endless stream of tweets keeps memory bounded.
MAX_WORD_MEMO = 20_000

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


def saved_tokenizer(directory: Path) -> Any:
    """The tokenizer saved in ``directory`` (a model's ``text_encoder/``), by the class its ``tokenizer_config.json``
    names (``BertTokenizer``, ``BertweetTokenizer``, ...): transformers' concrete tokenizer classes import no torch,
    its ``AutoTokenizer`` does. ``ModelLoadError`` (one line, naming the file) when that file names no such class."""
    import transformers

    config = Path(directory) / "tokenizer_config.json"
    try:
        name = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError, AttributeError) as err:
        raise ModelLoadError(f"{config}: cannot read the saved tokenizer's class: {err}") from err
    cls = getattr(transformers, str(name), None) if name else None
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelLoadError(f"{config}: tokenizer_class {name!r} is not a transformers tokenizer class")
    try:
        return cls.from_pretrained(str(directory))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{directory}: cannot load the saved {name}: {str(err).splitlines()[0] if str(err) else err}") from err


def normaliser_name(normaliser: Callable[[str], str] | None) -> str | None:
    """``"module:function"`` naming a word normaliser (None for none), so an export can record it;
    ``MscmtError`` when it is not a module-level function that its name finds again."""
    if normaliser is None:
        return None
    module, name = getattr(normaliser, "__module__", None), getattr(normaliser, "__qualname__", "")
    found = getattr(importlib.import_module(module), name, None) if module and name.isidentifier() else None
    if found is not normaliser:
        raise MscmtError(f"word normaliser {normaliser!r} is not a module-level function, so an export cannot name it")
    return f"{module}:{name}"


def named_normaliser(name: str | None, where: Path) -> Callable[[str], str] | None:
    """The word normaliser :func:`normaliser_name` named (None for none); ``ModelLoadError`` naming ``where``
    when it cannot be imported."""
    if name is None:
        return None
    module, _, attr = name.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr, None)
    except ImportError as err:
        raise ModelLoadError(f"{where}: word normaliser {name!r} cannot be imported ({err}); install the plugin that provides it") from None
    if not callable(found):
        raise ModelLoadError(f"{where}: word normaliser {name!r} is not a function of {module}")
    return cast(Callable[[str], str], found)


def _first_id(*ids: int | None) -> list[int]:
    """The first of ``ids`` that is not None, as a one-element list (empty when all are None)."""
    return next(([i] for i in ids if i is not None), [])


class WordTokens:
    """A tweet's words as sub-word windows, by the window rule of :mod:`mscmt_cli.model.hf_text`.

    ``tokenizer`` is a transformers tokenizer (untyped); ``max_subwords`` the window size, special tokens
    included; ``normalise`` how a word is shown to the tokenizer (BERTweet's normalisation, else the word);
    ``name`` the text encoder's registered name (in messages). ``context``: what goes beside each tweet
    (``"caption"``: the caption, in the pair format; else nothing); ``token_types``: whether windows with a
    caption carry segment ids.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_subwords: int,
        name: str,
        normalise: Callable[[str], str] = str,
        context: str = "none",
        token_types: bool = False,
    ) -> None:
        # words come normalised by ``normalise``: a tokenizer that normalises too (BertweetTokenizer(normalization=True))
        # would normalise the normalised text a second time
        if getattr(tokenizer, "normalization", False):
            tokenizer.normalization = False
        self.tokenizer = tokenizer
        self.max_subwords = max_subwords
        self.name = name
        self.normalise = normalise
        self.context = context
        self.token_types = token_types
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.prefix = _first_id(tokenizer.cls_token_id, tokenizer.bos_token_id)
        self.suffix = _first_id(tokenizer.sep_token_id, tokenizer.eos_token_id)
        self._memo: dict[str, list[int]] = {}
        self._pair: PairFormat | None = None

    @property
    def takes_token_types(self) -> bool:
        """Whether windows carry segment ids: with a caption beside the tweet, where the encoder takes them."""
        return self.context == "caption" and self.token_types

    def word_ids(self, word: str) -> list[int]:
        """Sub-word ids of one word (never empty: unknown words give the unk id)."""
        ids = self._memo.get(word)
        if ids is None:
            if len(self._memo) >= MAX_WORD_MEMO:
                self._memo.clear()
                self._clear_tokenizer_cache(0)
            pieces = self.tokenizer.tokenize(self.normalise(word))
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

    def pair_format(self) -> PairFormat:
        """The tokenizer's pair format (:func:`pair_format`); ``MscmtError`` when it has none."""
        if self._pair is None:
            found = pair_format(self.tokenizer)
            if found is None:
                raise MscmtError(
                    f"--context caption: the tokenizer of text encoder {self.name!r} has no pair format (it does not join two texts)"
                )
            self._pair = found
        return self._pair

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
        """The tweet's windows; with ``context`` (the caption) in the pair format, per the window rule."""
        caption = self.context == "caption"
        if (context is not None) != caption:
            raise ValueError(
                f"context: this encoder reads {'a caption beside each tweet' if caption else 'the tweet alone'} "
                f"(context {self.context!r}), got {'no caption' if context is None else 'a caption'}"
            )
        if context is None:
            parts, positions = self._parts(words, self.max_subwords - len(self.prefix) - len(self.suffix))
            windows = [self.prefix + part + self.suffix for part in parts]
            return EncodedTweet(windows, [(k, len(self.prefix) + p) for k, p in positions])
        pair = self.pair_format()
        room = self.max_subwords - pair.n_special
        parts, positions = self._parts(words, room)
        last = len(parts) - 1
        windows = [self.prefix + part + self.suffix for part in parts[:last]]
        joined, types = pair.join(parts[last], self.caption_ids(context)[: room - len(parts[last])])
        windows.append(joined)
        offset = [len(self.prefix)] * last + [len(pair.prefix)]
        token_types = [[0] * len(w) for w in windows[:last]] + [types] if caption and self.token_types else None
        return EncodedTweet(windows, [(k, offset[k] + p) for k, p in positions], token_types)
