"""The IMGID CoNLL reader: real-data counts, label mapping, and every malformed case."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from mscmt_cli.data.conll import read_conll
from mscmt_cli.data.corpus import load_split
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.labels import LABELS, normalise_label
from tests.conftest import SHARED_DATA

# (sentences, tokens, entity spans) from ../shared/data/README.md
README_COUNTS = {
    ("twitter2015", "train"): (4000, 64439, 6352),
    ("twitter2015", "valid"): (1000, 16178, 1594),
    ("twitter2015", "test"): (3257, 52822, 5207),
    ("twitter2017", "train"): (3373, 53007, 6049),
    ("twitter2017", "valid"): (723, 11309, 1324),
    ("twitter2017", "test"): (723, 11330, 1351),
}


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
@pytest.mark.parametrize("corpus, split", sorted(README_COUNTS))
def test_real_corpus_counts(corpus, split):
    tweets = load_split(SHARED_DATA, corpus, split).tweets
    spans = sum(len(get_entities(list(t.tags))) for t in tweets)
    assert (len(tweets), sum(len(t.tokens) for t in tweets), spans) == README_COUNTS[(corpus, split)]
    assert {tag for t in tweets for tag in t.tags} <= set(LABELS)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
def test_merged_is_both_corpora():
    merged = load_split(SHARED_DATA, "merged", "test").tweets
    assert len(merged) == 3257 + 723
    assert load_split(SHARED_DATA, "2017", "test").corpus == "twitter2017"


def test_label_mapping():
    assert normalise_label("B-MISC") == "B-OTHER" and normalise_label("I-OTHER") == "I-OTHER"
    assert normalise_label("O") == "O"
    for bad in ("B-FOO", "X-PER", "PER", "b-per", ""):
        assert normalise_label(bad) is None


def _write(tmp_path: Path, content: bytes | str, name: str = "f.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_crlf_and_bom_are_read(tmp_path):
    path = _write(tmp_path, "\ufeffIMGID:1\r\nParis\tB-LOC\r\nrocks\tO\r\n\r\nIMGID:2\r\nhi\tO\r\n".encode("utf-8"))
    tweets = read_conll(path)
    assert [t.tokens for t in tweets] == [("Paris", "rocks"), ("hi",)]
    assert tweets[0].tags == ("B-LOC", "O") and tweets[0].image_id == "1"


def test_odd_tokens_are_kept(tmp_path):
    tweets = read_conll(_write(tmp_path, "IMGID:1\n\xa0\tO\na b\tO\n"))
    assert tweets[0].tokens == ("\xa0", "a b")


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("IMGID:1\nhello O\n", 2, "no tab"),
        ("IMGID:1\nhello\tB-FOO\n", 2, "unknown label 'B-FOO'"),
        ("hello\tO\nIMGID:1\n", 1, "token line before the first IMGID"),
        ("IMGID:1\n\nIMGID:2\nx\tO\n", 1, "IMGID:1 has no tokens"),
        ("IMGID:\nx\tO\n", 1, "IMGID line without an id"),
        ("IMGID:1\n\tO\n", 2, "empty token"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, content, line, fragment):
    path = _write(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_conll(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and fragment in str(err.value)


def test_empty_file_and_bad_bytes(tmp_path):
    with pytest.raises(DataError, match="empty corpus file"):
        read_conll(_write(tmp_path, "\n\n"))
    path = _write(tmp_path, b"IMGID:1\nok\tO\ncaf\xe9\tO\n", "latin1.txt")
    with pytest.raises(DataError, match=rf"{path}:3: not valid UTF-8 \(byte 0xe9"):
        read_conll(path)


def test_unknown_corpus_lists_known(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.txt").write_text("IMGID:1\nx\tO\n")
    with pytest.raises(MscmtError, match="known corpora in .*: mine"):
        load_split(tmp_path, "twitter2015", "train")


_token = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n"), min_size=1, max_size=8).filter(
    lambda s: not s.startswith("IMGID:")
)
_tweet = st.tuples(
    st.text("abc0123_", min_size=1, max_size=6), st.lists(st.tuples(_token, st.sampled_from(LABELS)), min_size=1, max_size=6)
)


@settings(max_examples=60, deadline=None)
@given(tweets=st.lists(_tweet, min_size=1, max_size=5), crlf=st.booleans())
def test_round_trip(tmp_path_factory, tweets, crlf):
    """Any well-formed file reads back exactly what was written."""
    nl = "\r\n" if crlf else "\n"
    text = nl.join(f"IMGID:{img}{nl}" + nl.join(f"{tok}\t{tag}" for tok, tag in rows) + nl for img, rows in tweets)
    path = tmp_path_factory.mktemp("rt") / "data.txt"
    path.write_bytes(text.encode("utf-8"))
    read = read_conll(path)
    assert [(t.image_id, list(zip(t.tokens, t.tags))) for t in read] == [(img, rows) for img, rows in tweets]
