"""BERTweet is fed tweets as in its pre-training: mscmt's word pieces against BertweetTokenizer(normalization=True).

The comparison, exactly: a tweet is split into words by mscmt
(``split_tweet``) and each word goes through ``BertweetEncoder.word_ids``
(normalise the word, then the tokenizer); the concatenated ids are compared
with ``BertweetTokenizer(vocab, codes, normalization=True)`` on

* the whole original tweet (``tokenize(text)``), for tweets whose words
  split_tweet cuts where BERTweet's own tweet tokenizer does;
* each word alone (``tokenize(word)``), for every word of every tweet,
  except the clitics and ``p.m.`` that BERTweet normalises differently inside
  a tweet than alone (mscmt follows the inside-a-tweet form, checked by the
  whole-tweet comparison).

Where the two cannot agree word by word it is stated in :data:`NOT_WORD_BY_WORD`.
"""

from __future__ import annotations

import sys

import emoji
import pytest
import torch

from mscmt_cli.data.tweet_tokenize import split_tweet
from mscmt_cli.errors import ModelLoadError
from plugins.bertweet_words import bertweet_normalise
from plugins.text_encoders import BertweetEncoder

# Tweets as they come from the Twitter API (HTML-escaped &, <, >).
WHOLE = [
    "RT @JohnDoe: Obama visits Paris 🇫🇷 today 😂😂 https://t.co/abc123",
    "Family day 👨‍👩‍👧 with @mom_and_dad at Disney World ❤️",
    "Great game by Lebron James 👍🏽👍🏿 #NBAFinals www.nba.com/x",
    "It’s 5 p.m. in New York and I’m still at work …",
    "Happy Birthday @taylorswift13 🎂🎉🎈 you're the best!!!",
    "Rain again in London ☔️☔️ … can anyone explain why?",
    "🇬🇧 vs 🇫🇷 tonight at 8 , who you got ? ⚽ #EURO2016",
    "Michael Jordan 🐐 http://bit.ly/2xYz said we'll win",
    "Texas floods 😢🙏🏻 donate here : https://t.co/XyZ",
    "Kobe ' s last game 💜💛 #MambaDay",
    "1️⃣ day to go until Christmas 🎄🎅🏼 @Santa",
    "Sunday brunch with the girls 👩🏽‍🤝‍👩🏻 ✨ #blessed",
]
# HTML entities and "can't": split_tweet cuts them into several words ("&" "amp" ";", "ca" "n't"),
# while BERTweet's tweet tokenizer reads the whole string ("&", "can't"); compared word by word only.
NOT_WORD_BY_WORD = [
    "Taylor Swift &amp; Justin Bieber at the Super Bowl 🏈🎤",
    "I can't believe Trump said that &gt;:( #debate",
    "Apple &lt;3 my new iPhone 📱😍",
]
TWEETS = WHOLE + NOT_WORD_BY_WORD
INSIDE_A_TWEET = {"'s", "’s", "'m", "’m", "'re", "'ll", "'d", "'ve", "p.m.", "a.m."}


@pytest.fixture(scope="module")
def encoders(tiny):
    from transformers import BertweetTokenizer

    ref = BertweetTokenizer(str(tiny.bertweet / "vocab.txt"), str(tiny.bertweet / "bpe.codes"), normalization=True)
    assert ref.demojizer is not None  # emoji is installed, so the reference converts emoji
    return BertweetEncoder(str(tiny.bertweet)), ref


def _words(text: str) -> list[str]:
    return [s.text for s in split_tweet(text)]


def _ours(enc: BertweetEncoder, words: list[str]) -> list[int]:
    return [i for w in words for i in enc.word_ids(w)]


def _ref(ref, text: str) -> list[int]:
    return ref.convert_tokens_to_ids(ref.tokenize(text))


@pytest.mark.parametrize("text", WHOLE)
def test_whole_tweet_ids_equal_bertweet_normalisation(encoders, text):
    enc, ref = encoders
    assert _ours(enc, _words(text)) == _ref(ref, text)


@pytest.mark.parametrize("text", TWEETS)
def test_every_word_ids_equal_bertweet_normalising_that_word(encoders, text):
    enc, ref = encoders
    for word in _words(text):
        if word not in INSIDE_A_TWEET:
            assert enc.word_ids(word) == (_ref(ref, word) or [ref.unk_token_id]), word


def test_the_comparison_fails_if_emoji_reach_the_tokenizer_raw(encoders):
    enc, ref = encoders
    raw = type(ref)(ref.vocab_file, ref.merges_file, normalization=True)
    raw.demojizer = None  # what loading BertweetTokenizer without the emoji package does
    emoji_tweets = [t for t in WHOLE if emoji.emoji_count(t)]
    assert len(emoji_tweets) == 11
    assert all(_ours(enc, _words(t)) != _ref(raw, t) for t in emoji_tweets)
    assert bertweet_normalise("😂") == ":face_with_tears_of_joy:"
    assert bertweet_normalise("👍🏽") == ":thumbs_up: :medium_skin_tone:"  # BERTweet splits off the skin tone
    assert bertweet_normalise("👨‍👩‍👧") == ":man: \u200d :woman: \u200d :girl:"  # and keeps the ZWJ between


@pytest.mark.parametrize(
    "word,shown",
    [
        ("@someone", "@USER"),
        ("@", "@USER"),
        ("https://t.co/x", "HTTPURL"),
        ("www.x.org", "HTTPURL"),
        ("HTTPURL", "HTTPURL"),
        ("’s", "'s"),
        ("'S", "'S"),
        ("n't", "n't"),
        ("cannot", "can not"),
        ("don't", "do n't"),
        ("p.m.", "p.m."),
        ("…", "..."),
        ("!!", "! !"),
        ("&amp;", "&"),
        ("#win", "#win"),
        ("Paris", "Paris"),
    ],
)
def test_words_are_shown_as_bertweet_pretraining_showed_them(word, shown):
    assert bertweet_normalise(word) == shown


def test_a_tokenizer_saved_with_normalization_is_not_normalised_twice(encoders, tiny, tmp_path):
    import json
    import shutil

    enc, _ = encoders
    copy = shutil.copytree(tiny.bertweet, tmp_path / "norm")
    config = json.loads((copy / "tokenizer_config.json").read_text())
    (copy / "tokenizer_config.json").write_text(json.dumps({**config, "normalization": True}))
    again = BertweetEncoder(str(copy), pretrained=False)
    words = _words(WHOLE[0])
    assert _ours(again, words) == _ours(enc, words)


def test_bertweet_needs_the_emoji_package(tiny, monkeypatch):
    import plugins.bertweet_words as te

    te.demojizer.cache_clear()
    monkeypatch.setitem(sys.modules, "emoji", None)  # import emoji now raises ImportError
    try:
        with pytest.raises(ModelLoadError, match=r"'emoji' is not installed.*pip install 'emoji>=2'"):
            BertweetEncoder(str(tiny.bertweet))
    finally:
        te.demojizer.cache_clear()


@torch.no_grad()
def test_entity_offsets_index_the_original_text(tiny):
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble
    from mscmt_cli.registry import Registry
    from mscmt_cli.tagging.tagger import Tagger

    assembled = assemble(
        Registry.from_entry_points(),
        Components(text="bertweet", image="none", fusion="none", decoder="crf"),
        list(LABELS),
        {"bertweet": str(tiny.bertweet)},
    )
    head = assembled.model.classifier
    head.weight.zero_()
    head.bias.fill_(-30.0)
    head.bias[LABELS.index("B-PER")] = 30.0  # every word its own entity
    tagger = Tagger(assembled, "cpu")
    for text in TWEETS:
        result = tagger.tag(text)
        assert [e.text for e in result.entities] == _words(text)  # raw words: 😂, @JohnDoe, the URL, &amp's pieces
        assert all(text[e.start : e.end] == e.text for e in result.entities)


def _b3b468d_rule(word: str) -> str:
    """BERTweet's input before its pre-training normalisation (mscmt at b3b468d): ``@name`` and URLs only."""
    if len(word) > 1 and word.startswith("@"):
        return "@USER"
    return "HTTPURL" if word.lower().startswith(("http://", "https://", "www.")) else word


def test_a_model_saved_before_the_normalisation_parameter_sees_the_input_it_was_trained_on(trained_run, tiny, tmp_path):
    """A config.json without ``text.normalization`` (written before it existed; format 2 configs of that time too)
    loads with the old rule, a lone ``@`` kept as it is; its decoder without ``constraints`` loads unconstrained."""
    import json
    import shutil

    from mscmt_cli.backends.decoding import decoding_of
    from mscmt_cli.model.build import load_model
    from mscmt_cli.registry import Registry

    old = tmp_path / "model"
    shutil.copytree(trained_run / "model", old)
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    assert config["format_version"] == 2 and config["params"]["text"].pop("normalization") == "pretraining"
    for key in ("constraints", "constrain_training"):
        config["params"]["decoder"].pop(key)
    (old / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    registry, paths = Registry.from_entry_points(), {"clip-vit-l14": str(tiny.clip_vision)}
    then, now = load_model(old, registry, paths).model, load_model(trained_run / "model", registry, paths).model
    words = _words("RT @ jehnnybgoode : @ SwansOfficial via @ AP 😀 it’s @AP http://t.co/x")
    tokenizer = then.text.tokenizer
    want = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(_b3b468d_rule(w))) for w in words]
    assert [then.text.word_ids(w) for w in words] == want
    assert [now.text.word_ids(w) for w in words] != want, "today's rule reads these words otherwise"
    assert not decoding_of(then.decoder).constrained and decoding_of(now.decoder).constrained
