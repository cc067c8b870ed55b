"""Caption as context (``--context caption``): the caption as a second segment of the text encoder's input.

What is proved: the sub-word ids (and segment ids) the encoder gets are the tokenizer's own pair encoding of
(tweet, caption), and the labelled positions are exactly the tweet's first sub-words; the window rule (the tweet
is never truncated because of the caption, the caption is cut to the last window, no window exceeds the limit);
training, evaluation, saving and tagging end to end, with the saved config recording the context; the same
captions at training and tagging time give the same tags; a missing caption follows ``--missing-images``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mscmt_cli.engine.batching import collate, encode_examples
from mscmt_cli.errors import MscmtError
from mscmt_cli.model.hf_text import HFTextEncoder
from plugins.text_encoders import BertBaseEncoder, BertweetEncoder

ENCODERS = {"bertweet": BertweetEncoder, "bert": BertBaseEncoder}


def _encoder(tiny, name: str) -> HFTextEncoder:
    encoder = ENCODERS[name](str(getattr(tiny, name)))
    encoder.check_context("caption")
    encoder.context = "caption"
    return encoder.eval()


@pytest.fixture(scope="module")
def encoders(tiny) -> dict[str, HFTextEncoder]:
    return {name: _encoder(tiny, name) for name in ENCODERS}


WORDS = ["Obama", "visits", "Paris", "today", "with", "Kerry", "RT", "New", "York", "love", "the", "game", "#NBA", "Jordan", "!!"]
CAPTIONS = ["a man in a suit waving", "a singer with a microphone under stage lights", "two dogs", "a"]


def _own_pair(encoder: HFTextEncoder, words: list[str], caption: str) -> dict:
    """The tokenizer's own pair encoding of (tweet, caption); the tweet as the encoder shows its words."""
    return encoder.tokenizer(" ".join(encoder.normalise_word(w) for w in words), caption, return_token_type_ids=True)


def _first_subwords(encoder: HFTextEncoder, words: list[str], start: int) -> list[int]:
    """Where each word's first sub-word is, counted with the tokenizer itself (not the encoder's memo)."""
    out, at = [], start
    for word in words:
        out.append(at)
        at += len(encoder.tokenizer(encoder.normalise_word(word), add_special_tokens=False)["input_ids"])
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(ENCODERS)), st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), st.sampled_from(CAPTIONS))
def test_the_encoder_gets_the_tokenizers_own_pair_encoding_and_labels_the_tweets_first_subwords(encoders, name, words, caption):
    encoder = encoders[name]
    encoded = encoder.encode_words(words, caption)
    own = _own_pair(encoder, words, caption)
    assert encoded.windows == [list(own["input_ids"])]
    if name == "bert":  # BERT takes segment ids: 0 on [CLS] tweet [SEP], 1 on caption [SEP]
        assert encoded.token_types == [list(own["token_type_ids"])] and set(own["token_type_ids"]) == {0, 1}
    else:  # RoBERTa-style models have one segment: no token_type_ids
        assert encoded.token_types is None
    assert [k for k, _ in encoded.word_positions] == [0] * len(words)
    assert [p for _, p in encoded.word_positions] == _first_subwords(encoder, words, start=1)
    tweet_end = len(encoder.pair_format().prefix) + sum(
        len(encoder.tokenizer(encoder.normalise_word(w), add_special_tokens=False)["input_ids"]) for w in words
    )
    assert all(p < tweet_end for _, p in encoded.word_positions), "a labelled position points past the tweet segment"


def test_the_pair_formats_are_the_encoders_own(encoders):
    bert, bertweet = encoders["bert"], encoders["bertweet"]
    t = bert.tokenizer
    assert bert.pair_format().prefix == (t.cls_token_id,) and bert.pair_format().middle == (t.sep_token_id,)
    assert bert.pair_format().suffix == (t.sep_token_id,) and bert.pair_format().n_special == 3
    t = bertweet.tokenizer
    assert bertweet.pair_format().prefix == (t.bos_token_id,) and bertweet.pair_format().middle == (t.eos_token_id,) * 2
    assert bertweet.pair_format().n_special == 4


def test_a_missing_caption_is_an_empty_second_segment(encoders):
    bert = encoders["bert"]
    encoded = bert.encode_words(["Obama", "today"], "")
    prefix, middle, suffix = bert.pair_format().prefix, bert.pair_format().middle, bert.pair_format().suffix
    assert encoded.windows == [[*prefix, *bert.word_ids("Obama"), *bert.word_ids("today"), *middle, *suffix]]


def test_an_encoder_without_context_refuses_a_caption_and_one_with_context_needs_one(tiny, encoders):
    plain = BertBaseEncoder(str(tiny.bert))
    with pytest.raises(ValueError, match="context"):
        plain.encode_words(["a"], "a caption")
    with pytest.raises(ValueError, match="context"):
        encoders["bert"].encode_words(["a"])
    assert plain.encode_words(["Obama"]).token_types is None  # without context: the windows of before, no segment ids


# ---------------------------------------------------------------------------
# the window rule
# ---------------------------------------------------------------------------
VOCAB = ["a", "man", "obama", "paris", "supercalifragilistic", "#throwbackthursday", "internationalisation", "x", "!!", "new", "york"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(ENCODERS)),
    words=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=60),
    caption=st.lists(st.sampled_from(VOCAB), max_size=80).map(" ".join),
    window=st.integers(min_value=5, max_value=40),
)
def test_long_tweets_and_long_captions_keep_every_word_and_stay_in_the_window(encoders, name, words, caption, window):
    encoder = encoders[name]
    encoder.max_subwords, saved = window, encoder.max_subwords
    try:
        encoded = encoder.encode_words(words, caption)
        alone = encoder.encode_words(words, "")
    finally:
        encoder.max_subwords = saved
    pair = encoder.pair_format()
    room = window - pair.n_special
    assert all(len(w) <= window for w in encoded.windows), "a window exceeds the limit"
    # every word is represented, by its first sub-word, in order, each window holding whole words
    assert len(encoded.word_positions) == len(words)
    assert encoded.word_positions == sorted(encoded.word_positions)
    for (k, p), word in zip(encoded.word_positions, words):
        assert encoded.windows[k][p] == encoder.word_ids(word)[0]
    # the tweet is cut exactly as with an empty caption: the caption never shortens or moves a word
    assert encoded.word_positions == alone.word_positions and len(encoded.windows) == len(alone.windows)
    last = len(encoded.windows) - 1
    parts: list[list[int]] = []
    for k, window_ids in enumerate(encoded.windows):
        if k < last:  # earlier windows: the tweet alone, in the single format
            assert window_ids[0] == encoder._prefix[0] and window_ids[-1] == encoder._suffix[-1]
            parts.append(window_ids[len(encoder._prefix) : len(window_ids) - len(encoder._suffix)])
        else:
            tweet_len = len(alone.windows[k]) - pair.n_special  # the tweet's sub-words in the last window
            tweet = window_ids[len(pair.prefix) : len(pair.prefix) + tweet_len]
            parts.append(tweet)
            second = window_ids[len(pair.prefix) + tweet_len + len(pair.middle) : len(window_ids) - len(pair.suffix)]
            assert window_ids == [*pair.prefix, *tweet, *pair.middle, *second, *pair.suffix]
            assert second == encoder.caption_ids(caption)[: room - tweet_len], "the caption is not its first sub-words that fit"
    assert all(len(part) <= room for part in parts)
    for k, part in enumerate(parts):  # whole words: a window's part is exactly the sub-words of its words
        assert len(part) == sum(len(encoder.word_ids(w)[:room]) for (kk, _), w in zip(encoded.word_positions, words) if kk == k)
    assert [i for part in parts for i in part] == [i for w in words for i in encoder.word_ids(w)[:room]], "a tweet sub-word is lost"


def test_a_window_with_no_room_for_the_tweet_is_refused(tiny):
    from mscmt_cli.model.hf_text import HFTextParams
    from plugins.text_encoders import BertweetParams

    with pytest.raises(MscmtError, match="--set text.window"):
        BertweetEncoder(str(tiny.bertweet), params=BertweetParams(window=4)).check_context("caption")
    BertBaseEncoder(str(tiny.bert), params=HFTextParams(window=4)).check_context("caption")  # 3 special tokens: 1 left


def test_segment_ids_reach_the_model(encoders):
    bert = encoders["bert"]
    examples = encode_examples(bert, [["Obama", "in", "Paris"]], None, torch.zeros(1, 0), ["a man in a suit"])
    batch = collate(examples, bert.pad_id)
    assert batch.text.token_type_ids is not None and batch.text.token_type_ids.tolist() == examples[0].encoded.token_types
    with torch.no_grad():
        with_types = bert(batch.text)
        batch.text.token_type_ids = None
        without = bert(batch.text)
    assert not torch.allclose(with_types, without), "the caption's segment ids do not reach the model"
