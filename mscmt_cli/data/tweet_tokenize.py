"""Tweet-aware, offset-preserving tokenizer (regex based, standard library only).

:func:`split_tweet` cuts a tweet into :class:`Span` tokens that keep their
character offsets into the original string. Rules (where two could apply,
the precedence is URL, emoji, mention/hashtag, number, abbreviation,
clitic, word, punctuation):

1. **URLs** -- ``http://``, ``https://`` and ``www.`` forms are one token each.
   Trailing sentence punctuation (``. , ; : ! ? ) ] } ' "`` and ``…``) is not
   part of the URL; an emoji that follows without a space is not either.
2. **Mentions and hashtags** -- ``@name`` (letters, digits, underscore) and
   ``#word`` (unicode letters, digits, marks, underscore) are one token each,
   as in TWITTER-2015. A lone ``@`` or ``#`` is its own token.
3. **Emoji** -- each emoji grapheme is one token: ZWJ sequences
   (👨‍👩‍👧), skin-tone modifiers (👍🏽), variation selectors (❤️), regional
   indicator flag pairs (🇫🇷), tag sequences (🏴󠁧󠁢󠁳󠁣󠁴󠁿) and keycaps (1️⃣).
4. **Contractions and clitics** are split the Penn Treebank way:
   ``don't`` -> ``do`` ``n't``; ``it's`` -> ``it`` ``'s``; ``I'm``,
   ``we'll``, ``they've``, ``you're``, ``he'd`` likewise; possessives
   (``Trump's`` -> ``Trump`` ``'s``). The typographic apostrophe ``’`` works
   the same way.
5. **Words** -- runs of unicode letters, digits, combining marks and
   underscores (so 日本語, Русский, العربية, हिन्दी stay whole), with inner
   hyphens (``e-mail``) and inner ZWJ/ZWNJ; dotted abbreviations (``U.S.``);
   numbers with inner ``,``/``.`` (``1,000.50``), optionally after a currency
   sign (``$5``). ``RT`` is an ordinary word.
6. **Punctuation and symbols** -- a run of one repeated character
   (``...``, ``!!!``, ``??``) is one token; any other character is a token of
   its own (combining marks that follow it stay attached).
7. **Whitespace** -- any unicode whitespace (``str.isspace``) plus the
   invisible separators U+200B (zero-width space), U+2060 (word joiner),
   U+FEFF (BOM / zero-width no-break space) and U+180E is never part of a
   token; it only separates tokens, and leading/trailing whitespace is ignored.

Guarantee: every non-whitespace character of the input belongs to exactly one
token; tokens are in order, non-overlapping and non-empty, and
``text[span.start:span.end] == span.text`` for every span.

:func:`align_tokens` is the inverse helper for data that arrives already
tokenized: it recovers offsets of given tokens in the original text.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass

__all__ = ["EXTRA_SPACE", "Span", "align_tokens", "split_tweet", "tokens_with_offsets"]

#: Characters treated as whitespace on top of ``str.isspace`` (rule 7).
EXTRA_SPACE = "\u200b\u2060\ufeff\u180e"


def _mark_class() -> str:
    """Return regex class body with every combining mark (Mn, Mc, Me).

    Python's ``re`` has no ``\\p{M}``, and ``\\w`` does not match marks, so the
    class is derived from :mod:`unicodedata` (marks only live in planes 0-1
    and the variation-selector supplement, which is all we scan).
    """
    codes = [
        c
        for block in (range(0x20000), range(0xE0000, 0xE1000))
        for c in block
        if c <= sys.maxunicode and unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")
    ]
    ranges: list[list[int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_M = _mark_class()  # combining marks, as a class body
_WS = "\\s" + EXTRA_SPACE  # whitespace, as a class body

# Emoji code points (a compact superset of Unicode's Extended_Pictographic).
_EMOJI_BASE = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa"
    "\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab"
    "\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935\u2b05-\u2b07"
    "\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001faff"
)
_EMOJI_MOD = "\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff"  # VS, keycap, skin tones
_EMOJI_ELEM = f"[{_EMOJI_BASE}][{_EMOJI_MOD}]*[\U000e0020-\U000e007f]*"
_KEYCAP = "[0-9#*]\ufe0f?\u20e3"
_EMOJI = (
    "[\U0001f1e6-\U0001f1ff]{2}"  # flag: regional-indicator pair
    f"|{_KEYCAP}"
    f"|{_EMOJI_ELEM}(?:\u200d{_EMOJI_ELEM})*"  # ZWJ sequence / single emoji
)

_URL_CHAR = f'[^{_WS}<>"{_EMOJI_BASE}]'
_URL_END = f"[^{_WS}<>\"{_EMOJI_BASE}.,;:!?)\\]}}'\u2026]"
_URL = f"(?i:https?://|www\\.)(?:{_URL_CHAR}*{_URL_END})?"

_NT = "[nN]['\u2019][tT]"  # the "n't" clitic
_WCHAR = f"[\\w{_M}]"  # one word character: letter, digit, underscore, mark
_TAGCHAR = f"(?:(?!{_KEYCAP}){_WCHAR})"  # word character that does not start a keycap
_WEND = f"(?!{_WCHAR})"  # end of a word
# A word character that does not start a splittable "n't" (tempered token).
_WSTEP = f"(?:(?!{_NT}{_WEND})(?:{_TAGCHAR}|[\u200c\u200d](?={_WCHAR})))"
_LETTER = "[^\\W\\d_]"
_CURRENCY = "[$\u00a2-\u00a5\u20a0-\u20bf]"

_TOKEN_RE = re.compile(
    "|".join(
        (
            _URL,  # rule 1
            _EMOJI,  # rule 3 (before hashtags so that #️⃣ is one keycap)
            f"@(?:(?!{_KEYCAP})\\w)+",  # rule 2: mention
            f"#\\w{_TAGCHAR}*",  # rule 2: hashtag
            f"{_CURRENCY}?\\d+(?:[.,]\\d+)+|{_CURRENCY}\\d+",  # rule 5: 1,000.50 $5
            f"{_LETTER}(?:\\.{_LETTER})+\\.?(?!\\w)",  # rule 5: U.S.
            f"{_NT}{_WEND}",  # rule 4: n't
            f"(?<={_WCHAR})['\u2019](?i:s|m|d|ll|ve|re){_WEND}",  # rule 4: 's 'm ...
            f"(?=\\w){_WSTEP}+(?:-{_WSTEP}+)*",  # rule 5: words
            f"([^\\w{_WS}])\\1*[{_M}]*",  # rule 6: punctuation runs / symbols
            f"[^{_WS}]",  # safety net: any other non-space character
        )
    )
)


@dataclass(frozen=True)
class Span:
    """A token with its ``[start, end)`` character offsets in the source text."""

    text: str
    start: int
    end: int


def split_tweet(text: str) -> list[Span]:
    """Tokenize a tweet into offset-carrying spans (rules in the module docstring)."""
    return [Span(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def tokens_with_offsets(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Tokenize ``text``; return the token strings and their ``(start, end)`` offsets."""
    spans = split_tweet(text)
    return [s.text for s in spans], [(s.start, s.end) for s in spans]


def align_tokens(text: str, tokens: list[str]) -> list[tuple[int, int] | None]:
    """Locate pre-split ``tokens`` in ``text``, scanning left to right.

    Each token is searched from the end of the last token found, so repeated
    words map to successive occurrences. A token that cannot be found (or is
    empty) maps to ``None`` and does not move the cursor.
    """
    offsets: list[tuple[int, int] | None] = []
    cursor = 0
    for token in tokens:
        start = text.find(token, cursor) if token else -1
        if start < 0:
            offsets.append(None)
            continue
        cursor = start + len(token)
        offsets.append((start, cursor))
    return offsets
