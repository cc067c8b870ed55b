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
from mscmt_cli.engine.data import TweetReader, corpus_doc
from mscmt_cli.tagging.tagger import Tagger


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
    tagger: Tagger, tweets: Sequence[Tweet], console: Console, progress_every: float, ready: Callable[[], None] | None = None
) -> tuple[list[list[str]], list[str]]:
    """The Tagger's tags of labelled tweets (a split, a CoNLL file), read through the Tagger's own processor (its
    images, captions, missing-image policy and feature cache); and the notes on missing images and captions
    (``mscmt evaluate`` prints them as warnings). ``ready`` is called once the image and caption inputs are checked,
    before any work (``mscmt evaluate`` prints its data notes then)."""
    tweets = list(tweets)
    reader = TweetReader(tagger.processor)
    reader.process(tweets)  # a missing caption under --missing-images error stops here, before any work
    if ready is not None:
        ready()
    reader.precompute(tweets, console, progress_every)
    dataset = reader.encode(tweets, tagger.words, tagger.labels)
    return tag_split(tagger, tweets, dataset), reader.reports()
