"""Evaluation is tagging, then scoring: a split's tweets go through the :class:`Tagger`, as ``mscmt tag`` does.

As spaCy's ``nlp.evaluate``, nothing here predicts: :func:`tag_split` hands an
encoded split (its sub-words and image features, made by the training data
path) to :meth:`Tagger.predict <mscmt_cli.tagging.tagger.Tagger.predict>`, the
one prediction function of tagging, and :func:`evaluate` scores the tags it
gives against the gold ones. So validation each epoch, the test score at the
end of training and ``mscmt evaluate`` run the model as ``mscmt tag`` runs it,
under either backend (``--backend torch|onnx``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console

from mscmt_cli.data.conll import Tweet
from mscmt_cli.engine.batching import EncodedDataset
from mscmt_cli.engine.data import check_captions, context_store, data_notes, encode_split, feature_table, precompute_features
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.doc import Doc
from mscmt_cli.tagging.entities import joined_offsets
from mscmt_cli.tagging.tagger import Tagger


def corpus_doc(tokens: Sequence[str]) -> Doc:
    """A corpus tweet as the Tagger's :class:`Doc`: its own tokens, offsets into the tokens joined by spaces.

    Built as ``make_doc(tokens=...)`` builds a tokens-only tweet, without refusing a token a
    request may not have (the corpus reader decided what a token is)."""
    text, offsets = joined_offsets(list(tokens))
    return Doc(text, tuple(tokens), tuple(offsets), has_text=False)


def tag_split(tagger: Tagger, tweets: Sequence[Tweet], dataset: EncodedDataset) -> list[list[str]]:
    """The tags the Tagger predicts for every tweet, in order; ``dataset[i]`` is tweet ``i`` encoded (sub-words, image tokens).

    Scoring needs the tags only: the Tagger skips the probabilities and entities (``scores=False``)."""
    if len(tweets) != len(dataset):
        raise ValueError(f"{len(tweets)} tweets but {len(dataset)} encoded examples")
    examples = [dataset[i] for i in range(len(dataset))]
    docs = [corpus_doc(t.tokens) for t in tweets]
    results = tagger.predict(docs, [e.image for e in examples], [e.encoded for e in examples], scores=False)
    return [r.tags for r in results]


def evaluate(tagger: Tagger, tweets: Sequence[Tweet], dataset: EncodedDataset) -> dict:
    """seqeval scores (see :func:`~mscmt_cli.engine.metrics.score`) of the Tagger's tags of ``tweets`` against their gold tags."""
    from mscmt_cli.engine.metrics import score  # seqeval pulls in scikit-learn; tagging never needs it
    from mscmt_cli.labels import types_of

    return score([t.tags for t in tweets], tag_split(tagger, tweets, dataset), types_of(tagger.labels))


def tag_tweets(
    tagger: Tagger, tweets: Sequence[Tweet], settings: Settings, console: Console, ready: Callable[[], None] | None = None
) -> tuple[list[list[str]], list[str]]:
    """The Tagger's tags of labelled tweets (a split, a CoNLL file), their images or captions read as training reads
    them (``settings``: ``--images-dir``, ``--captions``, ``--missing-images``, the feature cache); and the notes on
    missing images and captions (``mscmt evaluate`` prints them as warnings). ``ready`` is called once the image and
    caption inputs are checked, before any work (``mscmt evaluate`` prints its data notes then)."""
    tweets = list(tweets)
    features = feature_table(settings.model_copy(update={"image": tagger.spec.components.image}), tagger.images.encoder)
    context = context_store(settings, tagger.spec.context, features)
    check_captions(context, tweets, features.source)
    if ready is not None:
        ready()
    precompute_features(features, tweets, console, settings.progress_every)
    dataset = encode_split(tweets, tagger.model.text, features, tagger.labels, context)
    return tag_split(tagger, tweets, dataset), data_notes(features, context)
