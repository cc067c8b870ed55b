"""``mscmt tag`` and the Python API on the shared tiny gated + CRF run."""

from __future__ import annotations

import io
import itertools
import json
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mscmt_cli.tagging.inputs import BadRecord, iter_jsonl
from mscmt_cli.tagging.stream import tag_stream
from tests.cli_support import one_line_error as _one_line_error
from tests.tagging_support import TRICKY_TEXTS, forced_tag, image_bytes
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import write_lines as _write_lines


def test_offsets_round_trip_through_the_model(tagger):
    for label in ("B-PER", "I-LOC"):
        with forced_tag(tagger, label):
            results = tagger.tag_batch(TRICKY_TEXTS)
        for text, result in zip(TRICKY_TEXTS, results):
            assert result.entities, text
            for ent in result.entities:
                assert text[ent.start : ent.end] == ent.text
                assert 0.0 <= ent.score <= 1.0
            if label == "B-PER":
                assert [e.text for e in result.entities] == result.tokens
            else:  # I- continues: one entity over the whole tweet
                assert len(result.entities) == 1 and result.entities[0].token_end == len(result.tokens)
                assert result.entities[0].score > 0.99


def test_tag_batch_keeps_order_and_matches_single_calls(tagger):
    texts = ["short", "a much longer tweet about New York and Paris " * 3, ["given", "as", "tokens"], "mid length tweet here"]
    batch = tagger.tag_batch(texts)
    assert [r.tokens for r in batch] == [tagger.tag(t).tokens for t in texts]
    assert [r.tags for r in batch] == [tagger.tag(t).tags for t in texts]


def test_tag_batch_refuses_lists_of_other_lengths(tagger):
    from mscmt_cli.errors import MscmtError

    with pytest.raises(MscmtError, match="2 tweets but 1 images"):
        tagger.tag_batch(["a", "b"], images=[None])
    with pytest.raises(MscmtError, match="2 tweets but 3 captions"):
        tagger.tag_batch(["a", "b"], captions=["x", "y", "z"])


def test_image_as_pil_bytes_or_path_gives_the_same_result(tagger, tmp_path):
    data = image_bytes()
    (tmp_path / "x.png").write_bytes(data)
    text = "Obama visits Paris"
    results = [tagger.tag(text, image=img) for img in (Image.open(io.BytesIO(data)), data, tmp_path / "x.png", str(tmp_path / "x.png"))]
    assert all(r.tag_probs == pytest.approx(results[0].tag_probs, abs=1e-4) for r in results)
    assert results[0].gate != tagger.tag(text).gate, "the image must reach the gate"


def test_unreadable_image_and_bombs_are_refused(tagger, monkeypatch):
    from mscmt_cli.errors import MscmtError

    with pytest.raises(MscmtError, match="unreadable image"):
        tagger.tag("hello", image=b"not an image")
    monkeypatch.setattr("mscmt_cli.data.images.MAX_PIXELS", 100)
    with pytest.raises(MscmtError, match="too large"):
        tagger.tag("hello", image=image_bytes(colour=(1, 2, 3)))


def test_features_come_from_the_disk_cache(tagger, tmp_path):
    from mscmt_cli.features import FeatureCache, TokenStore

    data = image_bytes(colour=(9, 99, 199))
    first = TokenStore(tagger.images.encoder, FeatureCache(tmp_path))
    feats, errors = first.features([data, data, None])
    assert not errors and list(tmp_path.rglob("*.npy"))

    class Refuses:
        input_kind, dim, max_tokens, token_dtype = "pixels", tagger.images.encoder.dim, 1, torch.float32

        def identity(self):
            return tagger.images.encoder.identity()

        def encode(self, inputs):
            raise AssertionError("a cached feature was recomputed")

    again, _ = TokenStore(Refuses(), FeatureCache(tmp_path)).features([data, None])  # type: ignore[arg-type]
    assert again[0].tolist() == feats[0].tolist() and again[1].tolist() == feats[2].tolist()


def test_cli_keeps_order_and_count_with_bad_lines_in_the_middle(mscmt, trained_run, tiny, corpus, tmp_path):
    image = sorted(corpus.images_dir.glob("*.jpg"))[0].name
    lines = [
        json.dumps({"id": 0, "text": TRICKY_TEXTS[0], "image": image}),
        "{broken",
        json.dumps({"id": 2, "tokens": ["New", "York"]}),
        json.dumps([1]),
        "",
        json.dumps({"id": 5, "text": "   "}),
        json.dumps({"id": 6, "text": TRICKY_TEXTS[2], "keep": {"x": [1, None]}}),
        json.dumps({"id": 7, "text": "x", "image": "no-such.jpg"}),
        json.dumps({"id": 8, "text": "😂 " * 2000}),
    ]
    src = _write_lines(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    result = mscmt(
        ["tag", src, "--model", trained_run, "--images", corpus.images_dir, "--out", out, "--missing-images", "error", *_clip_args(tiny)]
    )
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [0, 2, 6, 8]
    assert rows[2]["keep"] == {"x": [1, None]} and rows[0]["image"] == image
    assert len(rows[3]["tokens"]) == 2000 and len(rows[3]["tags"]) == 2000
    for row in rows:
        text = row.get("text", " ".join(row["tokens"]))
        assert all(text[e["start"] : e["end"]] == e["text"] for e in row["entities"])
    for number in (2, 4, 6, 8):
        assert f"in.jsonl:{number}: " in result.err
    assert "in.jsonl:5:" not in result.err and "skipped 4 bad line(s)" in result.err and "tagged 4 tweet(s)" in result.err


def test_cli_strict_stops_at_the_first_bad_line(mscmt, trained_run, tiny, tmp_path):
    src = _write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "one"}), json.dumps({"tokens": [1]}), json.dumps({"text": "three"})])
    out = tmp_path / "out.jsonl"
    result = mscmt(["tag", src, "--model", trained_run, "--out", out, "--strict", *_clip_args(tiny)])
    assert result.code == 2
    assert "in.jsonl:2: 'tokens'[0] must be a string" in result.err and "--strict" in result.err
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["one"]


def test_cli_stdin_to_stdout_with_model_from_the_environment(mscmt, trained_run, tiny, monkeypatch):
    texts = TRICKY_TEXTS + ["line\u2028separator \x85 and a lone \ud800 surrogate"]
    data = "".join(json.dumps({"n": i, "text": t}) + "\n" for i, t in enumerate(texts)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    monkeypatch.setenv("MSCMT_MODEL", str(trained_run))
    result = mscmt(["tag", "-", *_clip_args(tiny)])
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [r["n"] for r in rows] == list(range(len(texts)))
    assert [r["text"] for r in rows] == texts


def test_cli_without_any_model_says_how_to_give_one(mscmt, tmp_path, monkeypatch):
    monkeypatch.delenv("MSCMT_MODEL", raising=False)
    result = mscmt(["tag", _write_lines(tmp_path / "in.jsonl", ['{"text": "x"}'])])
    assert result.code == 2 and "--model" in result.err and "MSCMT_MODEL" in result.err


def test_cli_reads_conll_input_with_image_ids(mscmt, trained_run, tiny, corpus, tmp_path):
    src = corpus.data_dir / corpus.name / "test.txt"
    result = mscmt(["tag", src, "--model", trained_run, "--images", corpus.images_dir, "--missing-images", "error", *_clip_args(tiny)])
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert len(rows) == 16 and all(len(r["gold"]) == len(r["tags"]) == len(r["tokens"]) for r in rows)


def test_stream_reads_lazily_from_an_endless_input(tagger):
    consumed = itertools.count()

    def endless():
        for i in itertools.count():
            next(consumed)
            yield json.dumps({"text": f"tweet number {i}"}).encode()

    seen: list[int] = []

    class Enough(Exception):
        pass

    def on_result(item, result):
        seen.append(item.line)
        if len(seen) == 20:
            raise Enough

    with pytest.raises(Enough):
        tag_stream(tagger, iter_jsonl(endless()), on_result=on_result, on_bad=lambda b: None, window=8)
    assert seen == list(range(1, 21)) and next(consumed) <= 25


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
TWEETISH = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(st.text(max_size=30), JSON),
        "tokens": st.one_of(st.lists(st.text(max_size=6), max_size=4), JSON),
        "image": st.one_of(st.none(), st.text(max_size=6)),
        "id": JSON,
    },
)
LINE = st.one_of(
    JSON.map(json.dumps), TWEETISH.map(lambda d: json.dumps(d, ensure_ascii=False)), st.binary(max_size=20).filter(lambda b: b"\n" not in b)
)


def _blank(raw: str | bytes) -> bool:
    raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    try:
        return not raw.rstrip(b"\r\n").decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(LINE, min_size=1, max_size=6))
def test_every_line_is_tagged_or_reported(tagger, lines):
    raw = [line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass") for line in lines]
    tagged: list[int] = []
    bad: list[BadRecord] = []
    tally = tag_stream(tagger, iter_jsonl(raw), on_result=lambda item, result: tagged.append(item.line), on_bad=bad.append, window=4)
    expected = [
        n for n, line in enumerate(raw, start=1) if not _blank(line.removeprefix(b"\xef\xbb\xbf") if n == 1 else line)
    ]  # a BOM marks the file's encoding
    assert sorted(tagged + [b.line for b in bad]) == expected
    assert tagged == sorted(tagged) and tally.tagged == len(tagged) and tally.bad == len(bad)


def test_caption_models_read_the_captions_file_or_a_caption_field(mscmt, tiny, corpus, tmp_path):
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble, save_model
    from mscmt_cli.registry import Registry
    from mscmt_cli.tagging.tagger import Tagger

    paths = {"bertweet": str(tiny.bertweet), "caption:bert-base": str(tiny.bert)}
    assembled = assemble(
        Registry.from_entry_points(),
        Components(text="bertweet", image="caption:bert-base", fusion="gated", decoder="crf"),
        list(LABELS),
        paths,
    )
    save_model(tmp_path / "run" / "model", assembled.model, assembled.spec)
    image_id = corpus.captions.read_text(encoding="utf-8").split(" :", 1)[0]
    src = _write_lines(
        tmp_path / "in.jsonl",
        [
            json.dumps({"text": "a b", "image": image_id}),
            json.dumps({"text": "c", "image": "unknown.jpg"}),
            json.dumps({"text": "d", "caption": "a red bus"}),
            json.dumps({"text": "e"}),
        ],
    )
    result = mscmt(["tag", src, "--model", tmp_path / "run", "--captions", corpus.captions, "--missing-images", "error", "--no-cache"])
    assert result.code == 0, result.err
    assert [json.loads(line)["text"] for line in result.out.splitlines()] == ["a b", "d", "e"]
    assert f"in.jsonl:2: no caption for image 'unknown.jpg' in {corpus.captions}" in result.err
    tagger = Tagger.from_pretrained(tmp_path / "run", captions=corpus.captions)
    assert tagger.tag("Obama in Paris", caption="a red bus").gate != tagger.tag("Obama in Paris", caption="three cats asleep").gate
    assert tagger.tag("x", image=image_id).gate == tagger.tag("x", caption=tagger.processor.captions.read(image_id)).gate


# --- inputs that are directories, pipes or unreadable -----------------------------------------------------------------


def test_inputs_that_are_directories_pipes_or_unreadable(mscmt, trained_run, tiny, tmp_path):
    import os
    import threading

    lines = [json.dumps({"n": i, "text": f"Obama in Paris {i}"}) for i in range(5)]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = mscmt(["tag", fifo, "--model", trained_run, "--out", tmp_path / "o.jsonl", *_clip_args(tiny)])
    writer.join(10)
    assert result.code == 0, result.err
    assert [json.loads(r)["n"] for r in (tmp_path / "o.jsonl").read_text().splitlines()] == list(range(5))
    _one_line_error(mscmt(["tag", tmp_path, "--model", trained_run]), f"{tmp_path}: is a directory")
    _one_line_error(mscmt(["tag", tmp_path / "nope.jsonl", "--model", trained_run]), "nope.jsonl: input file not found")


# --- a line over the size limit is a bad line -------------------------------------------------------------------------


def test_tag_reports_over_long_lines_in_json_lines_and_conll_and_keeps_the_rest(mscmt, trained_run, tiny, tmp_path):
    from mscmt_cli.tagging.inputs import MAX_LINE_BYTES

    long_text = json.dumps({"text": "x " * MAX_LINE_BYTES})
    src = _write_lines(tmp_path / "in.jsonl", [json.dumps({"n": 0, "text": "Obama"}), long_text, json.dumps({"n": 2, "text": "Paris"})])
    result = mscmt(["tag", src, "--model", trained_run, "--out", tmp_path / "o.jsonl", *_clip_args(tiny)])
    assert result.code == 0, result.err
    assert [json.loads(r)["n"] for r in (tmp_path / "o.jsonl").read_text().splitlines()] == [0, 2]
    assert f"in.jsonl:2: line of {len(long_text)} bytes is over the limit of {MAX_LINE_BYTES} bytes" in result.err

    conll = tmp_path / "in.txt"
    conll.write_text(f"IMGID:1\nObama\tB-PER\n\nIMGID:2\n{'y' * (MAX_LINE_BYTES + 5)}\tO\n\nIMGID:3\nParis\tB-LOC\n", encoding="utf-8")
    result = mscmt(["tag", conll, "--model", trained_run, *_clip_args(tiny)])
    assert result.code == 0, result.err
    assert [json.loads(r)["tokens"] for r in result.out.splitlines()] == [["Obama"], ["Paris"]]
    assert "in.txt:4: line 5: line of" in result.err


# --- writes that fail, an --images that is not a directory ------------------------------------------------------------


def test_a_full_disk_a_closed_pipe_and_a_wrong_images_option_are_one_line_errors(mscmt, trained_run, tiny, tmp_path, monkeypatch):
    import io
    import os
    import sys

    src = _write_lines(tmp_path / "in.jsonl", [json.dumps({"text": "Obama in Paris"})] * 3)
    base = ["tag", src, "--model", trained_run, *_clip_args(tiny)]
    if os.path.exists("/dev/full"):
        _one_line_error(mscmt([*base, "--out", "/dev/full"]), "--out /dev/full: cannot write (No space left on device)")
    _one_line_error(mscmt([*base, "--images", src]), f"--images {src}: is not a directory")
    _one_line_error(mscmt([*base, "--images", tmp_path / "nope"]), f"--images {tmp_path / 'nope'}: directory not found")

    class ClosedPipe(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    class Stdout(io.StringIO):
        buffer = ClosedPipe()

    monkeypatch.setattr(sys, "stdout", Stdout())
    _one_line_error(mscmt(base), "stdout was closed by its reader (broken pipe)")
