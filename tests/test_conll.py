"""The IMGID CoNLL reader: real-data counts, tags of any type, and every malformed case."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from mscmt_cli.data.conll import read_conll
from mscmt_cli.data.corpus import load_split
from mscmt_cli.data.problems import Problems
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.labels import LABELS, map_tag, split_tag
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


def test_tags_of_any_type_and_the_type_map():
    assert split_tag("B-geo-loc") == ("B", "geo-loc") and split_tag("O") == ("O", "")
    for bad in ("B-", "PER", "", "-PER", "B- x"):
        assert split_tag(bad) is None
    assert map_tag("B-MISC", {"MISC": "OTHER"}) == "B-OTHER" and map_tag("I-PER", {"MISC": "OTHER"}) == "I-PER"


def test_bundled_corpus_reads_misc_as_other_by_default(tmp_path):
    (tmp_path / "twitter2017").mkdir()
    (tmp_path / "twitter2017" / "test.txt").write_text("IMGID:1\nx\tB-MISC\ny\tI-MISC\n")
    assert load_split(tmp_path, "twitter2017", "test").tweets[0].tags == ("B-OTHER", "I-OTHER")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "test.txt").write_text("IMGID:1\nx\tB-MISC\n")
    assert load_split(tmp_path, "mine", "test").tweets[0].tags == ("B-MISC",)


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
        ("IMGID:1\nhello\tB-\n", 2, "label 'B-' is a tag with an empty type"),
        ("IMGID:1\nhello\tPER\n", 2, "label 'PER' is not a tag"),
        ("hello\tO\nIMGID:1\n", 1, "token line before the first IMGID"),
        ("IMGID:1\n\nIMGID:2\nx\tO\n", 1, "IMGID:1 has no tokens"),
        ("IMGID:\nx\tO\n", 1, "IMGID line without an id"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, content, line, fragment):
    path = _write(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_conll(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and fragment in str(err.value)


def test_an_empty_token_is_skipped_and_reported_or_refused_under_strict(tmp_path):
    path = _write(tmp_path, "IMGID:1\na\tO\n\tO\nb\tB-PER\n")
    problems = Problems()
    assert read_conll(path, problems)[0].tokens == ("a", "b")
    assert problems.report() == f"1 record(s) skipped: {path}:3: empty token before the tab"
    with pytest.raises(DataError, match=rf"^{path}:3: empty token before the tab \(--strict"):
        read_conll(path, Problems(strict=True))


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
