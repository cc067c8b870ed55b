"""mscmt: multimodal named entity recognition for tweets (MSCMT_Hybrid and its variants)."""

from __future__ import annotations

from mscmt_cli.version import __version__

__all__ = ["Tagger", "__version__"]


def __getattr__(name: str):
    # Tagger pulls in torch and transformers; import it only when asked for.
    if name == "Tagger":
        from mscmt_cli.tagging.tagger import Tagger

        return Tagger
    raise AttributeError(name)
