"""Tagging building blocks without a model: entity spans, offsets, input parsing."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from mscmt_cli.backends.arrays import eval_batches
from mscmt_cli.data.doc import InputError, make_doc
from mscmt_cli.data.entities import bio_spans, extract_entities, joined_offsets
from mscmt_cli.labels import LABELS
from mscmt_cli.tagging.inputs import BadRecord, InputRecord, iter_conll, parse_json_line, read_records
from tests.tagging_support import TRICKY_TEXTS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LABELS), max_size=12))
def test_bio_spans_match_seqeval(tags):
    expected = [(t, s, e + 1) for t, s, e in get_entities(list(tags))]
    assert sorted(bio_spans(tags)) == sorted(expected)


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_every_token_as_an_entity_slices_the_text(text):
    doc = make_doc(text=text)
    tags = ["B-LOC"] * len(doc.tokens)
    ents = extract_entities(doc.text, doc.offsets, tags, [0.5] * len(tags))
    assert [e.text for e in ents] == list(doc.tokens)
    for e in ents:
        assert text[e.start : e.end] == e.text and e.token_end == e.token_start + 1
    whole = extract_entities(doc.text, doc.offsets, ["B-PER"] + ["I-PER"] * (len(tags) - 1), [1.0] + [0.5] * (len(tags) - 1))
    assert len(whole) == 1 and whole[0].text == text.strip(" \t\u200b") and text[whole[0].start : whole[0].end] == whole[0].text
    assert whole[0].score == pytest.approx((1.0 + 0.5 * (len(tags) - 1)) / len(tags))


def test_tokens_with_text_map_repeated_words_to_successive_occurrences():
    doc = make_doc(text="a b a b a", tokens=["a", "b", "a", "b", "a"])
    assert doc.offsets == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
    with pytest.raises(InputError, match=r"'tokens'\[1\]"):
        make_doc(text="a b", tokens=["a", "c"])


def test_tokens_without_text_refer_to_the_joined_tokens():
    doc = make_doc(tokens=["New", "York", "🇺🇸"])
    assert not doc.has_text and doc.text == "New York 🇺🇸"
    assert [doc.text[s:e] for s, e in doc.offsets] == list(doc.tokens)
    assert joined_offsets(["ab", "c"]) == ("ab c", [(0, 2), (3, 4)])


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"not json", "invalid JSON"),
        (b"[1, 2]", "got an array"),
        (b'"text"', "got a string"),
        (b"null", "got null"),
        (b'{"id": 1}', "give 'text'"),
        (b'{"text": ""}', "empty tweet"),
        (b'{"text": " \\u200b "}', "empty tweet"),
        (b'{"text": 5}', "'text' must be a string"),
        (b'{"tokens": ["a", 2]}', r"'tokens'\[1\] must be a string"),
        (b'{"tokens": []}', "empty tweet"),
        (b'{"tokens": ["a", " "]}', "only whitespace"),
        (b'{"text": "a", "image": 3}', "'image' must be"),
        (b'{"text": "a", "x": NaN}', "NaN is not valid JSON"),
        (b'{"text": "\xff"}', "not valid UTF-8"),
        (b"[" * 100_000, "invalid JSON"),
    ],
)
def test_bad_json_lines_say_why(raw, message):
    item = parse_json_line(7, raw)
    assert isinstance(item, BadRecord) and item.line == 7
    assert re.search(message, item.message), item.message


def test_good_line_keeps_every_field_and_u2028_is_not_a_line_break(tmp_path):
    lines = [b'\xef\xbb\xbf{"text": "a\xe2\x80\xa8b", "meta": {"k": [1, null]}}\n', b"\n", b'{"tokens": ["x"]}\r\n']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(lines))
    with open(path, "rb") as fh:
        items = list(read_records(fh))
    assert [type(i) for i in items] == [InputRecord, InputRecord] and [i.line for i in items] == [1, 3]
    assert items[0].record == {"text": "a\u2028b", "meta": {"k": [1, None]}} and items[0].doc.tokens == ("a", "b")


def test_conll_blocks_are_detected_and_checked(tmp_path):
    text = "IMGID:1\nObama\tB-PER\nwins\tO\n\nIMGID:2\nhello\n\nIMGID:3\nx\tB-\n\nIMGID:4\n\n"
    path = tmp_path / "in.txt"
    path.write_text(text)
    with open(path, "rb") as fh:
        items = list(read_records(fh))
    assert [i.line for i in items] == [1, 5, 8, 11]
    assert items[0].record == {"image": "1", "tokens": ["Obama", "wins"], "gold": ["B-PER", "O"]}
    assert items[1].record == {"image": "2", "tokens": ["hello"]} and items[1].image == "2"
    assert isinstance(items[2], BadRecord) and "unknown label 'B-'" in items[2].message
    assert isinstance(items[3], BadRecord) and "empty tweet" in items[3].message
    assert isinstance(next(iter_conll([b"stray\n"])), BadRecord)


def test_eval_batches_cover_every_index_once_sorted_by_length():
    lengths = [5, 400, 3, 3, 90, 7, 5000, 2]
    batches = eval_batches(lengths, batch_size=3, max_subwords=500)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert all(len(b) <= 3 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 500) for b in batches)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # no budget: plain cuts of the sorted order
    assert eval_batches(lengths, batch_size=3) == [order[k : k + 3] for k in range(0, len(order), 3)]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, st.dictionaries(st.sampled_from(["text", "tokens", "image", "caption", "id"]), JSON, max_size=4)))
def test_any_json_value_is_parsed_or_reported(value):
    item = parse_json_line(1, json.dumps(value).encode())
    assert isinstance(item, (InputRecord, BadRecord))
    if isinstance(item, InputRecord):
        assert item.record == value
        assert all(item.doc.text[s:e] == t for t, (s, e) in zip(item.doc.tokens, item.doc.offsets))


# --- a line over the size limit is a bad line, read past without being held -------------------------------------------


class _HugeLineStream:
    """A stream of: a good line, one line of ``size`` bytes made on the fly, a good line; records the largest read."""

    def __init__(self, size: int) -> None:
        self.parts = [b'{"text": "first"}\n', size, b'{"text": "last"}\n']
        self.largest = 0

    def readline(self, limit: int = -1) -> bytes:
        assert limit > 0, "a line must never be read without a size limit"
        while self.parts:
            part = self.parts[0]
            if isinstance(part, int):
                n = min(limit, part + 1)  # the long line's bytes, then its newline
                self.parts[0] = part - n
                if self.parts[0] < 0:
                    self.parts.pop(0)
                    out = b"x" * (n - 1) + b"\n"
                else:
                    out = b"x" * n
            else:
                out = self.parts.pop(0)
            self.largest = max(self.largest, len(out))
            return out
        return b""


def test_a_200_mb_line_is_a_bad_line_and_never_held_in_memory():
    from mscmt_cli.tagging.inputs import MAX_LINE_BYTES, BadRecord, read_records

    stream = _HugeLineStream(200 * 2**20)
    items = list(read_records(stream))
    assert [i.line for i in items] == [1, 2, 3] and [i.record["text"] for i in (items[0], items[2])] == ["first", "last"]
    assert (
        isinstance(items[1], BadRecord)
        and items[1].message == f"line of {200 * 2**20} bytes is over the limit of {MAX_LINE_BYTES} bytes; skipped"
    )
    assert stream.largest <= MAX_LINE_BYTES + 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.integers(1, 24), st.booleans())
def test_bounded_lines_gives_every_line_or_its_size(lines, limit, final_newline):
    import io

    from mscmt_cli.tagging.inputs import LongLine, bounded_lines

    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    got = list(bounded_lines(io.BytesIO(data), limit))
    expected = list(data.split(b"\n"))
    if expected and expected[-1] == b"":
        expected.pop()
    assert len(got) == len(expected)
    for item, line in zip(got, expected):
        if len(line) <= limit:
            assert item.rstrip(b"\n") == line
        else:
            assert item == LongLine(len(line), limit)
