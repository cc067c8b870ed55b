"""Tests for mscmt_cli.data.tweet_tokenize (rules listed in its module docstring)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.data.tweet_tokenize import (
    EXTRA_SPACE,
    Span,
    align_tokens,
    split_tweet,
    tokens_with_offsets,
)


def toks(text: str) -> list[str]:
    """Token strings of ``text``."""
    return [s.text for s in split_tweet(text)]


def is_space(ch: str) -> bool:
    """Whitespace as defined by rule 7."""
    return ch.isspace() or ch in EXTRA_SPACE


def assert_guarantee(text: str) -> None:
    """Check the documented invariant of split_tweet on ``text``."""
    spans = split_tweet(text)
    owner = [0] * len(text)
    prev_end = 0
    for span in spans:
        assert isinstance(span, Span)
        assert span.start >= prev_end, "tokens must be ordered and non-overlapping"
        assert span.end > span.start, "tokens must be non-empty"
        assert text[span.start : span.end] == span.text
        assert not any(is_space(c) for c in span.text), "no whitespace inside tokens"
        for i in range(span.start, span.end):
            owner[i] += 1
        prev_end = span.end
    for i, ch in enumerate(text):
        assert owner[i] == (0 if is_space(ch) else 1), (i, ch)


# --- rule 1: URLs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://t.co/abc123.", ["see", "https://t.co/abc123", "."]),
        ("(http://example.com/a?b=1&c=2)", ["(", "http://example.com/a?b=1&c=2", ")"]),
        ("www.example.org, ok!", ["www.example.org", ",", "ok", "!"]),
        ("HTTPS://X.COM/y!", ["HTTPS://X.COM/y", "!"]),
        ("http://t.co/x👍", ["http://t.co/x", "👍"]),
        ("truncated http://t.co/…", ["truncated", "http://t.co/", "…"]),
    ],
)
def test_urls(text: str, expected: list[str]) -> None:
    assert toks(text) == expected


# --- rule 2: mentions and hashtags --------------------------------------------------


def test_mention_with_colon() -> None:
    assert toks("RT @user_1: hello") == ["RT", "@user_1", ":", "hello"]


def test_hashtags_unicode() -> None:
    assert toks("#日本 #NBA2015 #Ünïcode") == ["#日本", "#NBA2015", "#Ünïcode"]


def test_lone_at_and_hash() -> None:
    assert toks("@ # x") == ["@", "#", "x"]
    assert toks("a @ b #") == ["a", "@", "b", "#"]


def test_possessive_mention() -> None:
    assert toks("@trump's") == ["@trump", "'s"]


# --- rule 3: emoji -------------------------------------------------------------


@pytest.mark.parametrize(
    "emoji",
    [
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family ZWJ sequence
        "\U0001f1eb\U0001f1f7",  # flag FR
        "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
        "\u2764\ufe0f",  # red heart with variation selector
        "1\ufe0f\u20e3",  # keycap 1
        "#\ufe0f\u20e3",  # keycap #
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
        "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # woman technologist, skin tone
        "\U0001f602",  # face with tears of joy
    ],
)
def test_emoji_grapheme_is_one_token(emoji: str) -> None:
    assert toks(f"hi {emoji} there") == ["hi", emoji, "there"]
    assert toks(f"hi{emoji}there") == ["hi", emoji, "there"]


def test_consecutive_emoji_are_separate() -> None:
    assert toks("😂😂👍🏽") == ["😂", "😂", "👍🏽"]
    assert toks("🇫🇷🇩🇪") == ["🇫🇷", "🇩🇪"]


# --- rule 4: contractions and clitics ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("don't", ["do", "n't"]),
        ("DON'T", ["DO", "N'T"]),
        ("can't", ["ca", "n't"]),
        ("it's", ["it", "'s"]),
        ("I'm", ["I", "'m"]),
        ("we'll", ["we", "'ll"]),
        ("they've", ["they", "'ve"]),
        ("you're", ["you", "'re"]),
        ("he'd", ["he", "'d"]),
        ("Trump's", ["Trump", "'s"]),
        ("don\u2019t", ["do", "n\u2019t"]),
        ("it\u2019s", ["it", "\u2019s"]),
        ("Trump\u2019s", ["Trump", "\u2019s"]),
    ],
)
def test_contractions(text: str, expected: list[str]) -> None:
    assert toks(text) == expected


def test_quotes_are_not_clitics() -> None:
    assert toks("'so' he said") == ["'", "so", "'", "he", "said"]


# --- rule 5: words ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the U.S. team", ["the", "U.S.", "team"]),
        ("paid 1,000.50 today", ["paid", "1,000.50", "today"]),
        ("only $5!", ["only", "$5", "!"]),
        ("e-mail state-of-the-art", ["e-mail", "state-of-the-art"]),
        ("RT @a: x", ["RT", "@a", ":", "x"]),
        ("end.Start", ["end", ".", "Start"]),
        ("2015.", ["2015", "."]),
    ],
)
def test_words_and_numbers(text: str, expected: list[str]) -> None:
    assert toks(text) == expected


@pytest.mark.parametrize(
    "word",
    ["Русский", "العربية", "हिन्दी", "नमस्ते", "日本語", "café", "cafe\u0301", "می\u200cخواهم"],
)
def test_non_latin_words_stay_whole(word: str) -> None:
    assert toks(f"({word})") == ["(", word, ")"]
    assert toks(f"x {word} y") == ["x", word, "y"]


# --- rule 6: punctuation -----------------------------------------------------------


def test_punctuation_runs() -> None:
    assert toks("wait... what!!! ??") == ["wait", "...", "what", "!!!", "??"]
    assert toks("a--b") == ["a", "--", "b"]


def test_mixed_punctuation_split_per_run() -> None:
    assert toks("?!?") == ["?", "!", "?"]
    assert toks("(+)") == ["(", "+", ")"]


# --- rule 7: whitespace --------------------------------------------------------------


def test_whitespace_is_ignored() -> None:
    text = "  \n\thello\r\n  world \u3000"
    assert tokens_with_offsets(text) == (["hello", "world"], [(4, 9), (13, 18)])


def test_zero_width_space_and_bom_split() -> None:
    assert toks("\ufeffhi\u200bthere\u2060!") == ["hi", "there", "!"]


def test_empty_and_blank() -> None:
    assert split_tweet("") == []
    assert split_tweet(" \n\u200b\ufeff ") == []


def test_repeated_words_have_distinct_offsets() -> None:
    spans = split_tweet("the cat and the cat")
    assert [(s.text, s.start, s.end) for s in spans] == [
        ("the", 0, 3),
        ("cat", 4, 7),
        ("and", 8, 11),
        ("the", 12, 15),
        ("cat", 16, 19),
    ]


def test_full_tweet() -> None:
    text = "RT @NBA: LeBron's 1,000th game!!! 🏀🔥 #KingJames https://t.co/xyz."
    assert toks(text) == [
        "RT", "@NBA", ":", "LeBron", "'s", "1,000", "th", "game", "!!!",
        "🏀", "🔥", "#KingJames", "https://t.co/xyz", ".",
    ]  # fmt: skip
    assert_guarantee(text)


def test_span_is_frozen() -> None:
    span = split_tweet("hi")[0]
    with pytest.raises(AttributeError):
        span.start = 3  # type: ignore[misc]


# --- properties -------------------------------------------------------------------

_TWEETISH = st.lists(
    st.sampled_from(
        list("ab nN'’tsS.,-$@#:/!?1\u200b\u200d\ufe0f\u20e3\n") + ["http://", "www.", "👍", "🏽", "🇫", "🇷", "👨", "\u0301", "ि", "日", "Я"]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_guarantee_arbitrary_unicode(text: str) -> None:
    assert_guarantee(text)


@settings(max_examples=300, deadline=None)
@given(_TWEETISH)
def test_guarantee_tweetish(text: str) -> None:
    assert_guarantee(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokens_with_offsets_matches_split(text: str) -> None:
    tokens, offsets = tokens_with_offsets(text)
    assert tokens == [text[a:b] for a, b in offsets]
    assert len(tokens) == len(split_tweet(text))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_align_recovers_own_offsets(text: str) -> None:
    tokens, offsets = tokens_with_offsets(text)
    aligned = align_tokens(text, tokens)
    assert aligned == offsets


# --- align_tokens ------------------------------------------------------------------


def test_align_repeated_words() -> None:
    text = "New York ,  New York !"
    assert align_tokens(text, ["New", "York", ",", "New", "York", "!"]) == [
        (0, 3),
        (4, 8),
        (9, 10),
        (12, 15),
        (16, 20),
        (21, 22),
    ]


def test_align_missing_token_is_none_and_keeps_cursor() -> None:
    text = "I love NY"
    assert align_tokens(text, ["I", "hate", "love", "NY"]) == [(0, 1), None, (2, 6), (7, 9)]


def test_align_empty_inputs() -> None:
    assert align_tokens("", []) == []
    assert align_tokens("abc", [""]) == [None]
    assert align_tokens("", ["a"]) == [None]


def test_align_does_not_reuse_consumed_text() -> None:
    assert align_tokens("a a", ["a", "a", "a"]) == [(0, 1), (2, 3), None]
