"""Data in any format, any label set and any scheme: readers, conversions, and real CLI runs on tiny models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.data.conll import Tweet, read_conll
from mscmt_cli.data.entities import bio_spans, joined_offsets
from mscmt_cli.data.labelset import training_labels, unseen_types
from mscmt_cli.data.reading import ReadOptions, read_data_file
from mscmt_cli.data.schemes import detect, from_bio, to_bio
from mscmt_cli.errors import DataError, MscmtError
from tests.conftest import EXAMPLE_DATA

SIX = ("corporation", "creative-work", "group", "location", "person", "product")
#: The bundled example's types spread over WNUT-17's six (by the first token's length, so deterministic).
SPREAD = {"PER": ("person",), "LOC": ("location",), "ORG": ("group", "corporation"), "OTHER": ("product", "creative-work")}

Example = tuple[tuple[str, ...], tuple[str, ...], str]  # tokens, BIO tags, image id


def six_type(split: str, n: int) -> list[Example]:
    """The first ``n`` tweets of the bundled example's ``split``, their entities retyped into six types."""
    out = []
    for t in read_conll(EXAMPLE_DATA / "tweets" / f"{split}.txt")[:n]:
        tags = ["O"] * len(t.tags)
        for etype, a, b in bio_spans(t.tags):
            new = SPREAD[etype][len(t.tokens[a]) % len(SPREAD[etype])]
            tags[a:b] = [f"B-{new}"] + [f"I-{new}"] * (b - a - 1)
        out.append((t.tokens, tuple(tags), t.image_id))
    return out


def entities(tokens: tuple[str, ...], tags: tuple[str, ...]) -> tuple[str, list[dict]]:
    """The tokens joined by spaces and their entities as character offsets (``mscmt tag``'s convention)."""
    text, offsets = joined_offsets(tokens)
    return text, [{"start": offsets[a][0], "end": offsets[b - 1][1], "type": t} for t, a, b in bio_spans(tags)]


def write_conll(path: Path, rows: list[Example], scheme: str = "bio") -> None:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for tokens, tags, _ in rows:
        lines += [f"{tok}\t-\t{tag}" for tok, tag in zip(tokens, from_bio(tags, scheme))] + ["\t"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_jsonl_ids(path: Path, rows: list[Example]) -> None:
    ids = {tag: i for i, tag in enumerate(("O",) + tuple(f"{p}-{t}" for t in SIX for p in "BI"))}
    path.write_text("".join(json.dumps({"tokens": list(tk), "ner_tags": [ids[t] for t in tg]}) + "\n" for tk, tg, _ in rows))


def write_jsonl_spans(path: Path, rows: list[Example]) -> None:
    lines = []
    for tokens, tags, image in rows:
        text, ents = entities(tokens, tags)
        lines.append(json.dumps({"text": text, "tokens": list(tokens), "entities": ents, "image": f"{image}.jpg"}) + "\n")
    path.write_text("".join(lines), encoding="utf-8")


def write_parquet(path: Path, rows: list[Example]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"tokens": [list(r[0]) for r in rows], "tags": [list(r[1]) for r in rows]}), path)


def write_label_studio(path: Path, rows: list[Example]) -> None:
    tasks = []
    for k, (tokens, tags, _) in enumerate(rows):
        text, ents = entities(tokens, tags)
        result = [{"type": "labels", "value": {"start": e["start"], "end": e["end"], "labels": [e["type"]]}} for e in ents]
        tasks.append({"id": k, "data": {"text": text}, "annotations": [{"result": result}]})
    path.write_text(json.dumps(tasks), encoding="utf-8")


WRITERS: dict[str, tuple[str, Callable[[Path, list[Example]], None]]] = {
    "conll": (".conll", write_conll),
    "bioes": (".bio", lambda p, r: write_conll(p, r, "bioes")),
    "jsonl-ids": (".jsonl", write_jsonl_ids),
    "jsonl-spans": (".jsonl", write_jsonl_spans),
    "parquet": (".parquet", write_parquet),
    "label-studio": (".json", write_label_studio),
}
TAG_NAMES = ",".join(("O",) + tuple(f"{p}-{t}" for t in SIX for p in "BI"))


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- schemes -----------------------------------------------------------------------------------

_bio = st.lists(st.tuples(st.sampled_from(["O", "B", "I"]), st.sampled_from(["PER", "geo-loc"])), max_size=12).map(
    lambda pairs: [
        "O" if p == "O" else f"{'B' if p == 'B' or k == 0 or pairs[k - 1][0] == 'O' or pairs[k - 1][1] != t else 'I'}-{t}"
        for k, (p, t) in enumerate(pairs)
    ]
)


@settings(max_examples=200, deadline=None)
@given(tags=_bio, scheme=st.sampled_from(["bio", "iob1", "bioes"]))
def test_scheme_conversions_round_trip(tags, scheme):
    """Well-formed BIO written in a scheme reads back as the same BIO, and the scheme is detected whenever an entity shows it."""
    written = from_bio(tags, scheme)
    assert to_bio(written, scheme) == tags
    assert detect([written]) == (scheme if any(t != "O" for t in tags) else "bio")


def test_bilou_reads_as_bioes_and_an_unknown_prefix_names_the_line(tmp_path):
    path = _write(tmp_path, "a.bio", "New\tB-LOC\nYork\tL-LOC\nis\tO\nhot\tU-X\n")
    assert read_data_file(path, ReadOptions()).tweets[0].tags == ("B-LOC", "I-LOC", "O", "B-X")
    bad = _write(tmp_path, "b.bio", "a\tO\nb\tX-PER\n")
    with pytest.raises(MscmtError, match=rf"^{bad}:2: tag 'X-PER': prefix 'X' is not one of BIO's"):
        read_data_file(bad, ReadOptions())
    with pytest.raises(MscmtError, match=rf"^{path}:2: tag 'L-LOC'"):
        read_data_file(path, ReadOptions(scheme="bio"))


def test_iob1_is_detected_and_said(tmp_path):
    path = _write(tmp_path, "a.conll", "Jim\tI-PER\nBob\tB-PER\nand\tO\nAnn\tI-PER\nLee\tI-PER\n")
    read = read_data_file(path, ReadOptions())
    assert read.tweets[0].tags == ("B-PER", "B-PER", "O", "B-PER", "I-PER")
    assert read.notes == (f"{path}: tags read as IOB1 (detected), converted to BIO",)


# --- readers -----------------------------------------------------------------------------------


def test_column_conll_reads_docstart_columns_blank_tab_lines_and_skips_an_empty_token(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nParis\tNNP\tx\tB-geo-loc\n\tNN\tx\tO\nrocks\tVB\tx\tO\n\t\nhi\tUH\tx\tO\n"
    path = _write(tmp_path, "a.txt", text)
    read = read_data_file(path, ReadOptions())
    assert [(t.tokens, t.tags) for t in read.tweets] == [(("Paris", "rocks"), ("B-geo-loc", "O")), (("hi",), ("O",))]
    assert read.tweets[0].token_lines == (3, 5) and read.notes == (
        f"{path}: tags read as BIO (detected)",
        f"{path}: 1 record(s) skipped: {path}:4: empty token",
    )
    with pytest.raises(DataError, match=rf"^{path}:4: empty token \(--strict"):
        read_data_file(path, ReadOptions(strict=True))
    with pytest.raises(DataError, match=rf"^{path}:3: label 'NNP' is not a tag"):
        read_data_file(path, ReadOptions(label_column=1))


@pytest.mark.parametrize(
    "record, fragment",
    [
        ({"text": "a b", "entities": [{"start": 0, "end": 2, "type": "X"}]}, "does not begin and end on token boundaries"),
        ({"text": "a b", "entities": [{"start": 0, "end": 9, "type": "X"}]}, "runs past the text"),
        (
            {"text": "a b c", "entities": [{"start": 0, "end": 3, "type": "X"}, {"start": 2, "end": 5, "type": "Y"}]},
            "entities 0 and 1 overlap",
        ),
        ({"text": "a b", "entities": [{"start": 0, "end": 1, "type": ""}]}, "'type' must be a non-empty string"),
        ({"tokens": ["a", "b"], "tags": [1, 0]}, "integer tags need the tag of each id"),
        ({"tokens": ["a"], "tags": ["B-"]}, "(empty type)"),
        ({"entities": []}, "no tweet"),
        ({"text": "a"}, "no labels"),
        ({"text": "a", "tags": ["O"], "image": "../x.jpg"}, "points outside --images-dir"),
        ({"text": "a", "tags": ["O"], "image": "/etc/x.jpg"}, "points outside --images-dir"),
    ],
)
def test_a_bad_jsonl_record_is_one_line_naming_file_and_line(tmp_path, record, fragment):
    path = _write(tmp_path, "a.jsonl", json.dumps({"tokens": ["ok"], "tags": ["O"]}) + "\n\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError) as err:
        read_data_file(path, ReadOptions())
    assert str(err.value).startswith(f"{path}:3: ") and fragment in str(err.value) and "\n" not in str(err.value)


def test_label_studio_task_without_annotations_is_named(tmp_path):
    tasks = [{"id": 7, "data": {"text": "a"}, "annotations": [{"result": [], "was_cancelled": True}]}]
    path = _write(tmp_path, "ls.json", json.dumps(tasks))
    with pytest.raises(DataError, match=rf"^{path}: task 1 \(id 7\): task without annotations$"):
        read_data_file(path, ReadOptions())


def test_a_record_names_its_image_and_caption(tmp_path):
    line = {"tokens": ["a"], "tags": ["B-X"], "image": "sub/p1.png", "caption": "a cat"}
    tweet = read_data_file(_write(tmp_path, "a.jsonl", json.dumps(line)), ReadOptions()).tweets[0]
    assert (tweet.image_id, tweet.caption) == ("sub/p1", "a cat")


# --- the label set -----------------------------------------------------------------------------


def _tweets(*tag_rows: tuple[str, ...]) -> list[Tweet]:
    return [
        Tweet(tuple("w" * len(tags)), tags, "", f"f.txt:{1 + 10 * k}", tuple(range(1 + 10 * k, 1 + 10 * k + len(tags))))
        for k, tags in enumerate(tag_rows)
    ]


def test_the_label_set_is_the_training_types_sorted_or_fixed():
    train = _tweets(("B-zeta", "I-zeta", "O"), ("B-alpha",))
    assert training_labels(train, None) == ("O", "B-alpha", "I-alpha", "B-zeta", "I-zeta")
    assert training_labels(train, None, ("zeta",)) == ("O", "B-zeta", "I-zeta", "B-alpha", "I-alpha")
    assert training_labels(train, ("zeta", "alpha", "beta"))[-2:] == ("B-beta", "I-beta")
    with pytest.raises(MscmtError, match=r"^f.txt:11: tag 'B-alpha' is not in --labels \(zeta\)"):
        training_labels(train, ("zeta",))
    note = unseen_types(training_labels(train, None), {"test": _tweets(("B-new", "I-new", "B-new"), ("B-alpha",))})
    assert note == "types the label set lacks, scored as missed: test new (2)"


# --- real runs on tiny models ------------------------------------------------------------------


def _train(mscmt, tiny, tmp_path: Path, train: Path, valid: Path, test: Path, *extra: object) -> Path:
    out = tmp_path / "run"
    args = ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", "--train", train, "--valid", valid, "--test", test]
    result = mscmt([*args, "--out", out, "--epochs", "1", "--batch-size", "8", "--head-lr", "1e-2", *tiny.model_path_args(), *extra])
    assert result.code == 0, result.err
    return out


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_six_type_corpus_in_each_format_trains_evaluates_and_tags(fmt, tiny, mscmt, tmp_path):
    ext, write = WRITERS[fmt]
    files = {}
    for split, n in (("train", 40), ("valid", 12), ("test", 12)):
        files[split] = tmp_path / f"{split}{ext}"
        write(files[split], six_type(split, n))
    extra = ["--tag-names", TAG_NAMES] if fmt == "jsonl-ids" else []
    run = _train(mscmt, tiny, tmp_path, files["train"], files["valid"], files["test"], *extra)
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["labels"] == ["O"] + [f"{p}-{t}" for t in SIX for p in "BI"]
    scores_file = tmp_path / "scores.json"
    result = mscmt(["evaluate", run, "--test", files["test"], "--json", scores_file, *extra, *tiny.model_path_args()])
    assert result.code == 0, result.err
    scores = json.loads(scores_file.read_text())
    gold = [tags for _, tags, _ in six_type("test", 12)]
    assert scores["micro"]["support"] == sum(len(bio_spans(t)) for t in gold)
    assert list(scores["types"])[:6] == list(SIX)
    assert json.loads((run / "test_scores.json").read_text())["micro"] == scores["micro"]
    tagged = tmp_path / "tagged.jsonl"
    _write(tmp_path, "in.jsonl", "".join(json.dumps({"tokens": list(tk)}) + "\n" for tk, _, _ in six_type("test", 4)))
    result = mscmt(["tag", tmp_path / "in.jsonl", "--model", run, "--out", tagged, *tiny.model_path_args()])
    assert result.code == 0, result.err
    assert {t.partition("-")[2] for line in tagged.read_text().splitlines() for t in json.loads(line)["tags"]} <= set(SIX) | {""}


def test_tag_output_reads_back_as_the_same_examples_and_retrains(tiny, mscmt, tmp_path):
    """``mscmt tag`` writes text + entities; read as training data it gives exactly its tokens and tags, and trains."""
    rows = six_type("train", 40)
    for split, part in (("train", rows[:28]), ("valid", rows[28:])):
        write_conll(tmp_path / f"{split}.conll", part)
    run = _train(mscmt, tiny, tmp_path, tmp_path / "train.conll", tmp_path / "valid.conll", tmp_path / "valid.conll")
    # even lines give only the text (split by the tweet tokenizer), odd lines their tokens too
    inputs = "".join(
        json.dumps({"text": " ".join(tk), **({"tokens": list(tk)} if k % 2 else {})}) + "\n" for k, (tk, _, _) in enumerate(rows)
    )
    tagged = tmp_path / "tagged.jsonl"
    result = mscmt(["tag", _write(tmp_path, "in.jsonl", inputs), "--model", run, "--out", tagged, *tiny.model_path_args()])
    assert result.code == 0, result.err
    records = [json.loads(line) for line in tagged.read_text().splitlines()]
    read = read_data_file(tagged, ReadOptions()).tweets
    assert [(t.tokens, t.tags) for t in read] == [(tuple(r["tokens"]), tuple(r["tags"])) for r in records]
    # corrected by hand (the lines that kept their tokens): the gold entities in place of the predicted ones, then trained on
    kept = [(record, row) for k, (record, row) in enumerate(zip(records, rows)) if k % 2]
    for record, (tokens, tags, _) in kept:
        assert tuple(record["tokens"]) == tokens
        record["entities"] = entities(tokens, tags)[1]
    corrected = _write(tmp_path, "corrected.jsonl", "".join(json.dumps(r) + "\n" for r, _ in kept))
    assert [(t.tokens, t.tags) for t in read_data_file(corrected, ReadOptions()).tweets] == [(tk, tg) for _, (tk, tg, _) in kept]
    again = tmp_path / "again"
    result = mscmt(
        ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", "--train", corrected, "--valid", corrected]
        + ["--out", again, "--epochs", "1", *tiny.model_path_args()]
    )
    assert result.code == 0, result.err
    types = sorted({t for _, (_, tags, _) in kept for t, _, _ in bio_spans(tags)})
    assert json.loads((again / "model" / "config.json").read_text())["labels"] == ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def test_labels_fix_the_set_and_map_renames_types(tiny, mscmt, tmp_path):
    write_conll(tmp_path / "train.conll", six_type("train", 30))
    write_conll(tmp_path / "valid.conll", six_type("valid", 8))
    base = ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", "--epochs", "1", *tiny.model_path_args()]
    data = ["--train", tmp_path / "train.conll", "--valid", tmp_path / "valid.conll"]
    result = mscmt([*base, *data, "--out", tmp_path / "a", "--labels", "person,location"])
    assert result.code == 2 and f"{tmp_path / 'train.conll'}:" in result.err and "is not in --labels (person, location)" in result.err
    maps = [a for t in SIX if t not in ("person", "location") for a in ("--map", f"{t}=thing")]
    result = mscmt([*base, *data, "--out", tmp_path / "b", "--labels", "thing,person,location", *maps])
    assert result.code == 0, result.err
    labels = json.loads((tmp_path / "b" / "model" / "config.json").read_text())["labels"]
    assert labels == ["O", "B-thing", "I-thing", "B-person", "I-person", "B-location", "I-location"]
    assert "scored as missed" not in result.out + result.err


def test_a_study_takes_the_data_by_path_and_checks_it_on_a_rerun(tiny, mscmt, tmp_path):
    for split, n in (("train", 30), ("valid", 8), ("test", 8)):
        write_conll(tmp_path / f"{split}.conll", six_type(split, n))
    data = ["--train", tmp_path / "train.conll", "--valid", tmp_path / "valid.conll"]
    base = ["grid", "--lrs", "1e-3", "--batch-sizes", "8", "--text", "bertweet", "--image", "none", "--fusion", "none", "--epochs", "1"]
    args = [*base, *data, "--test", tmp_path / "test.conll", "--out", tmp_path / "grid", *tiny.model_path_args()]
    first = mscmt(args)
    assert first.code == 0, first.err
    assert json.loads((tmp_path / "grid" / "lr0.001-bs8" / "model" / "config.json").read_text())["labels"][1:3] == [
        "B-corporation",
        "I-corporation",
    ]
    again = mscmt(args)
    assert again.code == 0 and "already finished" in again.err
    write_conll(tmp_path / "train.conll", six_type("train", 29))
    changed = mscmt(args)
    assert changed.code == 2 and "was trained on other data: train.conll" in changed.err.replace(f"{tmp_path.name}/", "")
    no_test = mscmt([*base, *data, "--out", tmp_path / "grid2", *tiny.model_path_args()])
    assert no_test.code == 2 and "with --train FILE, give --test FILE too" in no_test.err


def test_a_multimodal_model_on_text_only_data_follows_missing_images(tiny, mscmt, tmp_path):
    rows = six_type("train", 24)
    write_jsonl_ids(tmp_path / "train.jsonl", rows)  # no image in any record
    (tmp_path / "images").mkdir()
    args = ["train", "--text", "bertweet", "--image", "clip-vit-l14", "--fusion", "gated", "--images-dir", tmp_path / "images"]
    args += ["--train", tmp_path / "train.jsonl", "--valid", tmp_path / "train.jsonl", "--tag-names", TAG_NAMES, "--epochs", "1"]
    refused = mscmt([*args, "--out", tmp_path / "a", "--missing-images", "error", *tiny.model_path_args()])
    assert refused.code == 2 and f"{tmp_path / 'train.jsonl'}:1: the tweet names no image (48 tweet(s) name none)" in refused.err
    done = mscmt([*args, "--out", tmp_path / "b", *tiny.model_path_args()])
    assert done.code == 0, done.err
    said = " ".join((done.out + done.err).split())
    assert "48 tweet(s) name no image: read as a missing image (policy 'blank')" in said
    assert "replaced by a blank image" not in said


def test_a_six_type_model_exports_and_tags_alike_on_onnx(tiny, mscmt, tmp_path):
    pytest.importorskip("onnxruntime")
    for split, n in (("train", 30), ("valid", 8)):
        write_conll(tmp_path / f"{split}.conll", six_type(split, n))
    run = _train(mscmt, tiny, tmp_path, tmp_path / "train.conll", tmp_path / "valid.conll", tmp_path / "valid.conll")
    assert mscmt(["export", run, "--out", tmp_path / "onnx", *tiny.model_path_args()]).code == 0
    labels = json.loads((run / "model" / "config.json").read_text())["labels"]
    assert json.loads((tmp_path / "onnx" / "decoding.json").read_text())["labels"] == labels
    _write(tmp_path, "in.jsonl", "".join(json.dumps({"tokens": list(tk)}) + "\n" for tk, _, _ in six_type("test", 6)))
    tags = {}
    for backend, model in (("torch", run), ("onnx", tmp_path / "onnx")):
        out = tmp_path / f"{backend}.jsonl"
        result = mscmt(["tag", tmp_path / "in.jsonl", "--model", model, "--backend", backend, "--out", out, *tiny.model_path_args()])
        assert result.code == 0, result.err
        tags[backend] = [json.loads(line)["tags"] for line in out.read_text().splitlines()]
    assert tags["onnx"] == tags["torch"]


def test_the_type_map_and_data_options_are_settings_in_toml_too(tmp_path):
    from mscmt_cli.settings import load_settings

    config = _write(tmp_path, "c.toml", 'train = "a.conll"\nformat = "conll"\nlabels = "PER,LOC"\n[map]\nMISC = "OTHER"\ngeo-loc = "LOC"\n')
    s = load_settings(config, {"type_map": {"MISC": "MISC"}})
    assert (s.train_file, s.data_format, s.labels) == (Path("a.conll"), "conll", "PER,LOC")
    assert s.type_map == {"MISC": "MISC", "geo-loc": "LOC"}  # the command line's entry over the file's, key by key
