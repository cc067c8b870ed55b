"""The caption read beside each new tweet by a model trained with ``--context caption``.

A tweet's caption is, first found: the caption given with it (a line's
``caption`` field, ``Tagger.tag(..., caption=...)``, the service's
``caption``); the caption of its image id in ``--captions`` (ids matched
without directory and extension); with a captioner (``--captioner``), the
caption generated for its image (a file, bytes or a PIL image; batched, cached
by content: :class:`~mscmt_cli.captioning.CaptionMaker`). A tweet without an
image reads the empty caption "". An image with no caption (no line in the
captions file and no captioner), or one the captioner cannot read, follows the
missing-image policy: ``error`` reports the tweet, ``blank`` reads the empty
caption and counts it (:meth:`CaptionReader.report`).

These are the rules of a caption image encoder (:mod:`mscmt_cli.tagging.images`),
and training reads the captions file under the same policy, so a missing
caption is the empty second segment at training and at tagging time alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mscmt_cli.data.captions import CaptionSource
from mscmt_cli.data.images import MissingImage, check_policy
from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.images import SHOWN_EXAMPLES, Caption

if TYPE_CHECKING:
    from mscmt_cli.captioning import CaptionMaker

#: What the tweets of a caption-context model need, in messages.
READS = "this model reads the image's caption beside the tweet (context 'caption')"


@dataclass
class CaptionReader:
    """Each tweet's caption for a caption-context model, from the given caption, the captions file or a captioner."""

    captions: CaptionSource | None = None
    policy: str = "error"
    captioner: CaptionMaker | None = None
    substituted: int = 0
    substituted_examples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_policy(self.policy)

    @staticmethod
    def input_for(image: Any, caption: str | None) -> Any:
        """What :meth:`read` reads for one tweet: its ``caption`` when given, else its ``image`` (an id, a path, bytes, None)."""
        return Caption(caption) if caption is not None else image

    def needs_captioner(self, image_id: str) -> bool:
        """Whether image ``image_id`` is captioned by the captioner (there is one, and the captions file has no line for it)."""
        return self.captioner is not None and (self.captions is None or image_id not in self.captions)

    def read(self, inputs: Sequence[Any]) -> tuple[list[str | None], dict[int, str]]:
        """One caption per input, and ``{index: message}`` for the inputs that fail under policy ``error`` (their caption is None).

        Inputs are :class:`Caption`, image ids or paths, :class:`MissingImage`, None, and with a
        captioner also bytes and PIL images; the images to caption are captioned in one batched pass.
        """
        items = self._prepare(list(inputs))
        texts: list[str | None] = []
        errors: dict[int, str] = {}
        for i, item in enumerate(items):
            try:
                texts.append(self._text(item))
            except MscmtError as err:
                if self.policy == "error":
                    errors[i] = str(err)
                    texts.append(None)
                    continue
                self.substituted += 1
                if len(self.substituted_examples) < SHOWN_EXAMPLES:
                    self.substituted_examples.append(str(err))
                texts.append("")
        return texts, errors

    def _prepare(self, items: list[Any]) -> list[Any]:
        """With a captioner: every image without a caption becomes its generated :class:`Caption` (or a :class:`MissingImage`)."""
        if self.captioner is None:
            return items
        todo = [i for i, item in enumerate(items) if self._to_caption(item)]
        for i, made in zip(todo, self.captioner.captions([items[i] for i in todo])):
            items[i] = MissingImage(str(made)) if isinstance(made, MscmtError) else Caption(made)
        return items

    def _to_caption(self, item: Any) -> bool:
        if item is None or isinstance(item, (Caption, MissingImage)):
            return False
        return not isinstance(item, (str, os.PathLike)) or self.needs_captioner(os.fspath(item))

    def _text(self, item: Any) -> str:
        if item is None:
            return ""
        if isinstance(item, MissingImage):
            raise MscmtError(item.message)
        if isinstance(item, Caption):
            return item.text
        if not isinstance(item, (str, os.PathLike)):
            raise MscmtError(f"{READS}: give a 'caption' with the {type(item).__name__} image, or pass --captioner")
        name = os.fspath(item)
        if self.captions is None:
            raise MscmtError(f"image {name[:80]!r}: {READS}; pass --captions FILE or --captioner, or give a 'caption'")
        return self.captions.read(name)

    def report(self) -> str | None:
        """One line about tweets whose image had no caption and that read the empty caption, or None."""
        if not self.substituted:
            return None
        shown = "; ".join(self.substituted_examples) + ("; ..." if self.substituted > SHOWN_EXAMPLES else "")
        return f"{self.substituted} tweet(s) read an empty caption beside them, their image having none (policy 'blank'): {shown}"
