"""The :class:`Tagger`: a trained model loaded once, tagging tweets in length-sorted batches.

``mscmt tag``, ``mscmt serve`` and ``mscmt explain`` all go through this class::

    from mscmt_cli import Tagger

    tagger = Tagger.from_pretrained("runs/best", model_paths={"clip-vit-l14": "/models/clip"})
    result = tagger.tag("Obama visits Paris 🇫🇷 https://t.co/x", image="photo.jpg")
    result.entities[0].as_dict()
    # {'text': 'Obama', 'type': 'PER', 'start': 0, 'end': 5, 'token_start': 0, 'token_end': 1, 'score': 0.93}

Entity offsets and scores follow :mod:`mscmt_cli.tagging.entities`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mscmt_cli.engine.batching import Example, collate, eval_batches
from mscmt_cli.engine.evaluate import autocast, resolve_device
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache
from mscmt_cli.model.build import Assembled
from mscmt_cli.model.components import EncodedTweet
from mscmt_cli.tagging.doc import Doc, InputError, doc_from_value
from mscmt_cli.tagging.entities import Entity, extract_entities
from mscmt_cli.tagging.images import FeatureStore, ImageLike


@dataclass
class TagResult:
    """One tagged tweet.

    Attributes:
        doc: the tweet (its ``text``, ``tokens`` and token ``offsets``).
        tags: the predicted tag of each token.
        tag_probs: the probability of each predicted tag (marginal / softmax).
        entities: the entities, with character offsets into ``doc.text``.
        gate: per token, the visual gate ``g_i`` averaged over hidden dims, or
            None when the fusion has no gate.
    """

    doc: Doc
    tags: list[str]
    tag_probs: list[float]
    entities: list[Entity]
    gate: list[float] | None = None

    @property
    def tokens(self) -> list[str]:
        return list(self.doc.tokens)

    def is_finite(self) -> bool:
        """Whether every probability and gate value is a finite number (a model with NaN weights gives NaN)."""
        values = self.tag_probs + (self.gate or [])
        return all(math.isfinite(v) for v in values)

    def as_dict(self) -> dict[str, Any]:
        """``{"tokens", "tags", "entities"}`` as written by ``mscmt tag``."""
        return {"tokens": self.tokens, "tags": list(self.tags), "entities": [e.as_dict() for e in self.entities]}


class Tagger:
    """A trained MSCMT model ready to tag tweets (loaded once, reused for every call)."""

    def __init__(
        self,
        assembled: Assembled,
        device: str | torch.device = "auto",
        *,
        cache: FeatureCache | None = None,
        missing_images: str = "error",
        batch_size: int = 32,
        max_batch_subwords: int = 16384,
        captions: dict[str, str] | None = None,
        captions_file: str = "",
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = assembled.model.eval().to(self.device)
        self.spec = assembled.spec
        self.labels = list(assembled.spec.labels)
        self.images = FeatureStore(
            assembled.image, cache or FeatureCache(None), missing_images, captions=captions, captions_file=captions_file
        )
        self.batch_size = batch_size
        self.max_batch_subwords = max_batch_subwords

    @classmethod
    def from_pretrained(
        cls,
        run_dir: str | Path,
        model_paths: dict[str, str] | None = None,
        device: str = "auto",
        *,
        cache_dir: str | Path | None = None,
        missing_images: str = "error",
        batch_size: int = 32,
        captions: str | Path | None = None,
        registry: Any = None,
    ) -> Tagger:
        """Load a run directory (or its ``model/``) in one call.

        Args:
            run_dir: a training run directory or a saved model directory.
            model_paths: component name -> local directory (the frozen image encoder is
                referenced by hub id in the run, e.g. ``{"clip-vit-l14": "/models/clip"}``).
            device: ``auto``, ``cpu`` or ``cuda``.
            cache_dir: on-disk image feature cache, or None for memory only.
            missing_images: ``error`` (raise / report) or ``blank`` (neutral image, counted).
            captions: captions file, for models whose image encoder reads captions
                (an image given as an id is looked up there).
        """
        from mscmt_cli.engine.evaluation_job import model_dir
        from mscmt_cli.model.build import load_model
        from mscmt_cli.registry import Registry

        assembled = load_model(model_dir(Path(run_dir)), registry or Registry.from_entry_points(), model_paths or {})
        cache = FeatureCache(Path(cache_dir) if cache_dir is not None else None)
        table = None
        if captions is not None and assembled.image.input_kind == "caption":
            from mscmt_cli.data.captions import read_captions

            table = read_captions(Path(captions))
        return cls(
            assembled,
            device,
            cache=cache,
            missing_images=missing_images,
            batch_size=batch_size,
            captions=table,
            captions_file=str(captions or ""),
        )

    # -- description -------------------------------------------------------

    @property
    def has_gate(self) -> bool:
        """Whether the fusion explains its predictions with a visual gate (declared by the component)."""
        return "gate" in type(self.model.fusion).explains

    def info(self) -> dict[str, Any]:
        """Model components and their parameters, labels, image input kind (what ``GET /info`` shows)."""
        return {
            "components": self.spec.components.model_dump(),
            "params": self.spec.params,
            "labels": self.labels,
            "image_input": self.images.encoder.input_kind,
            "has_gate": self.has_gate,
            "device": str(self.device),
        }

    # -- public API --------------------------------------------------------

    def tag(self, text: str | Sequence[str], image: ImageLike = None, *, caption: str | None = None) -> TagResult:
        """Tag one tweet: raw ``text`` or a list of tokens, with an optional image
        (PIL image, bytes, or path). Caption models take ``caption`` (the text),
        or ``image`` as an image id looked up in the captions file."""
        return self.tag_batch([text], [image], captions=[caption])[0]

    def tag_batch(
        self,
        texts: Sequence[str | Sequence[str]],
        images: Sequence[ImageLike] | None = None,
        *,
        captions: Sequence[str | None] | None = None,
    ) -> list[TagResult]:
        """Tag many tweets at once (results in input order); raises :class:`MscmtError` on bad input."""
        images = list(images) if images is not None else [None] * len(texts)
        if len(images) != len(texts):
            raise MscmtError(f"tag_batch: {len(texts)} tweets but {len(images)} images")
        docs = []
        for i, value in enumerate(texts):
            try:
                docs.append(doc_from_value(value))
            except InputError as err:
                raise MscmtError(f"tweet {i}: {err}") from None
        if captions is not None:
            if len(captions) != len(texts):
                raise MscmtError(f"tag_batch: {len(texts)} tweets but {len(captions)} captions")
            images = [self.images.input_for(img, c) for img, c in zip(images, captions)]
        feats, errors = self.images.features(images)
        if errors:
            i = min(errors)
            raise MscmtError(f"tweet {i}: {errors[i]}")
        return self.predict(docs, feats)  # type: ignore[arg-type]

    # -- building blocks (used by the streaming tagger) ---------------------

    def encode(self, doc: Doc) -> EncodedTweet:
        """Sub-word windows of one tweet (CPU); long tweets span several windows."""
        return self.model.text.encode_words(list(doc.tokens))

    @torch.inference_mode()
    def predict(
        self, docs: Sequence[Doc], features: Sequence[torch.Tensor], encoded: Sequence[EncodedTweet] | None = None
    ) -> list[TagResult]:
        """Tag prepared tweets; ``features[i]`` is tweet ``i``'s ``(D,)`` image feature.

        Tweets are sorted by length into batches and the input order is restored.
        """
        encoded = list(encoded) if encoded is not None else [self.encode(d) for d in docs]
        results: list[TagResult | None] = [None] * len(docs)
        lengths = [e.n_subwords for e in encoded]
        for idx in eval_batches(lengths, self.batch_size, self.max_batch_subwords):
            batch = collate([Example(encoded[i], [], features[i]) for i in idx], self.model.text.pad_id)
            with autocast(self.device):
                output = self.model(batch.to(self.device))
            paths = self.model.decode(output)
            probs = self.model.marginals(output).float().cpu()  # (B, T, C)
            gate = output.gate.float().mean(dim=-1).cpu() if output.gate is not None else None  # (B, T)
            for b, i in enumerate(idx):
                results[i] = self._result(docs[i], paths[b], probs[b], None if gate is None else gate[b])
        return results  # type: ignore[return-value]

    def _result(self, doc: Doc, path: list[int], probs: torch.Tensor, gate: torch.Tensor | None) -> TagResult:
        """probs ``(T, C)``, gate ``(T,)`` (padded past the tweet's length)."""
        n = len(doc.tokens)
        tags = [self.labels[k] for k in path[:n]]
        tag_probs = probs[torch.arange(n), torch.tensor(path[:n], dtype=torch.long)].clamp(0.0, 1.0).tolist()
        entities = extract_entities(doc.text, doc.offsets, tags, tag_probs)
        return TagResult(
            doc, tags, [round(p, 6) for p in tag_probs], entities, None if gate is None else [round(float(g), 4) for g in gate[:n]]
        )
