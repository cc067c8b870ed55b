"""Corpus directories named by path (``--corpus ./mine``, ``mscmt crossdata ./a ./b``): their splits in any format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mscmt_cli.data.corpus import corpus_label, load_split, split_files
from mscmt_cli.data.entities import bio_spans
from mscmt_cli.errors import MscmtError
from tests.cli_support import one_line_error
from tests.test_data_formats import SIX, six_type, write_conll, write_jsonl_spans

TEXT_ONLY = ["--text", "bertweet", "--image", "none", "--fusion", "none", "--epochs", "1", "--batch-size", "8", "--head-lr", "1e-2"]
SIZES = {"train": 30, "valid": 8, "test": 10}


def conll_dir(root: Path, name: str = "colA") -> Path:
    """A six-type corpus directory of column CoNLL files (``train.conll``, ...)."""
    (root / name).mkdir(parents=True)
    for split, n in SIZES.items():
        write_conll(root / name / f"{split}.conll", six_type(split, n))
    return root / name


def jsonl_dir(root: Path, name: str = "jsonB") -> Path:
    """A six-type corpus directory of JSONL text + entities files (``train.jsonl``, ...), other tweets than :func:`conll_dir`'s."""
    (root / name).mkdir(parents=True)
    for split, n in SIZES.items():
        write_jsonl_spans(root / name / f"{split}.jsonl", six_type(split, 2 * n)[n:])
    return root / name


def _support(rows) -> int:
    return sum(len(bio_spans(tags)) for _, tags, _ in rows)


def test_split_files_prefers_txt_else_the_one_file_of_the_split(tmp_path):
    d = conll_dir(tmp_path)
    assert split_files(None, str(d), "valid") == (d / "valid.conll",)
    (d / "valid.txt").write_text((d / "valid.conll").read_text())
    assert split_files(None, str(d), "valid") == (d / "valid.txt",)
    (d / "train.txt.bak").write_text("x")  # not train.<ext>: ignored
    assert split_files(None, str(d), "train") == (d / "train.conll",)
    (d / "train.jsonl").write_text("{}\n")
    with pytest.raises(
        MscmtError, match=rf"^corpus directory {d}: 2 files could be the train split \(train.conll, train.jsonl\); keep one$"
    ):
        split_files(None, str(d), "train")
    (d / "test.conll").unlink()
    with pytest.raises(MscmtError, match=rf"^corpus directory {d}: no test split \(neither test.txt nor one test.<ext> file\)$"):
        split_files(None, str(d), "test")
    with pytest.raises(MscmtError, match=rf"^corpus directory {tmp_path / 'nope'}: does not exist$"):
        split_files(None, str(tmp_path / "nope"), "test")
    with pytest.raises(MscmtError, match="corpus 'twitter2015': no data directory"):
        split_files(None, f"{d}+twitter2015", "valid")


def test_a_plus_b_of_paths_reads_both_and_names_them_by_folder(tmp_path):
    a, b = conll_dir(tmp_path), jsonl_dir(tmp_path)
    both = load_split(None, f"{a}+{b}", "test")
    assert len(both.tweets) == 2 * SIZES["test"] and both.files == (a / "test.conll", b / "test.jsonl")
    assert {t for tw in both.tweets for tag in tw.tags for t in [tag.partition("-")[2]] if t} <= set(SIX)
    assert corpus_label(f"{a}/+{b}") == "colA+jsonB" and corpus_label("2015+mine") == "twitter2015+mine"


def test_crossdata_on_two_corpus_directories_by_path(tiny, mscmt, tmp_path):
    a, b = conll_dir(tmp_path / "data"), jsonl_dir(tmp_path / "data")
    out = tmp_path / "study"
    result = mscmt(["crossdata", a, b, "--out", out, *TEXT_ONLY, *tiny.model_path_args()])
    assert result.code == 0, result.err
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["name"] for r in rows] == ["colA-to-jsonB", "jsonB-to-colA", "colA+jsonB"]
    assert [(r["train_corpus"], r["eval_corpus"]) for r in rows] == [(str(a), str(b)), (str(b), str(a)), (f"{a}+{b}", f"{a}+{b}")]
    test_a, test_b = six_type("test", SIZES["test"]), six_type("test", 2 * SIZES["test"])[SIZES["test"] :]
    assert [r["test"]["micro"]["support"] for r in rows] == [_support(test_b), _support(test_a), _support(test_a + test_b)]
    assert (out / "colA-to-jsonB" / "eval_jsonB_test.json").is_file()
    assert json.loads((out / "colA-to-jsonB" / "model" / "config.json").read_text())["labels"][1:] == [
        f"{p}-{t}" for t in SIX for p in "BI"
    ]
    again = mscmt(["crossdata", a, b, "--out", out, *TEXT_ONLY, *tiny.model_path_args()])
    assert again.code == 0 and "0 row(s) trained now" in again.err, again.err


def test_crossdata_refuses_a_missing_or_ambiguous_split_in_one_line(mscmt, tmp_path):
    a, b = conll_dir(tmp_path), jsonl_dir(tmp_path)
    (b / "valid.jsonl").unlink()
    result = mscmt(["crossdata", a, b, "--out", tmp_path / "study", *TEXT_ONLY])
    one_line_error(result, f"corpus directory {b}: no valid split", alone=True)
    (b / "valid.jsonl").write_text("")
    (a / "test.jsonl").write_text("")
    result = mscmt(["crossdata", a, b, "--out", tmp_path / "study", *TEXT_ONLY])
    one_line_error(result, f"corpus directory {a}: 2 files could be the test split (test.conll, test.jsonl)", alone=True)
    (a / "test.jsonl").unlink()
    result = mscmt(["crossdata", a, tmp_path / "nope", "--out", tmp_path / "study", *TEXT_ONLY])
    one_line_error(result, f"corpus directory {tmp_path / 'nope'}: does not exist", alone=True)
    assert not (tmp_path / "study").exists()


def test_train_and_evaluate_take_a_corpus_directory_by_path(tiny, mscmt, tmp_path):
    a, b = conll_dir(tmp_path), jsonl_dir(tmp_path)
    run = tmp_path / "run"
    result = mscmt(["train", "--corpus", a, "--out", run, *TEXT_ONLY, *tiny.model_path_args()])
    assert result.code == 0, result.err
    record = json.loads((run / "run.json").read_text())
    assert record["settings"]["corpus"] == str(a)
    assert sorted(record["data_files"]) == sorted(str(a / f"{s}.conll") for s in SIZES)
    scores = tmp_path / "scores.json"
    result = mscmt(["evaluate", run, "--corpus", b, "--json", scores, *tiny.model_path_args()])
    assert result.code == 0, result.err
    assert json.loads(scores.read_text())["micro"]["support"] == _support(six_type("test", 2 * SIZES["test"])[SIZES["test"] :])
    (b / "test.jsonl").unlink()
    one_line_error(mscmt(["evaluate", run, "--corpus", b, *tiny.model_path_args()]), f"corpus directory {b}: no test split", alone=True)
    one_line_error(
        mscmt(["train", "--corpus", b, "--out", tmp_path / "run2", *TEXT_ONLY, *tiny.model_path_args()]),
        f"corpus directory {b}: no test split",
        alone=True,
    )


def test_a_run_trained_on_a_relative_corpus_path_evaluates_from_another_directory(tiny, mscmt, tmp_path, monkeypatch):
    """run.json records the directory the run was trained from; ``evaluate RUN`` reads relative data paths from there."""
    conll_dir(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")
    result = mscmt(["train", "--corpus", "./colA", "--out", "run", *TEXT_ONLY, *tiny.model_path_args()])
    assert result.code == 0, result.err
    assert json.loads(Path("run/run.json").read_text())["working_dir"] == str(tmp_path / "work")
    monkeypatch.chdir(tmp_path)
    scores = tmp_path / "scores.json"
    result = mscmt(["evaluate", "work/run", "--json", scores, *tiny.model_path_args()])
    assert result.code == 0, result.err
    assert json.loads(scores.read_text())["micro"]["support"] == _support(six_type("test", SIZES["test"]))
