"""What ``train`` and ``evaluate`` say about the data they read (schemes detected, unseen types), and when they say it."""

from __future__ import annotations

from pathlib import Path

from mscmt_cli.data.conll import read_conll
from mscmt_cli.data.corpus import load_split
from mscmt_cli.data.reading import ReadOptions, read_data_file
from tests.cli_support import one_line_error


def test_a_file_read_as_bio_says_so_once_unless_the_scheme_is_given_or_it_is_a_bundled_corpus(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("Jim\tB-PER\nBob\tI-PER\nand\tO\nAnn\tI-PER\n", encoding="utf-8")  # I- after O: still BIO
    assert read_data_file(path, ReadOptions()).notes == (f"{path}: tags read as BIO (detected)",)
    assert read_data_file(path, ReadOptions(scheme="bio")).notes == ()
    assert read_data_file(path, ReadOptions(scheme="iob1")).notes == (f"{path}: tags read as IOB1, converted to BIO",)
    for name in ("twitter2015", "twitter2017", "mine"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "test.txt").write_text("IMGID:1\nJim\tB-PER\nand\tO\nUK\tB-MISC\n", encoding="utf-8")
    for name in ("twitter2015", "2017", "merged"):  # the bundled corpora, by name: BIO is known, not detected
        assert load_split(tmp_path / "data", name, "test").notes == ()
    mine = tmp_path / "data" / "mine" / "test.txt"
    assert load_split(tmp_path / "data", "mine", "test").notes == (f"{mine}: tags read as BIO (detected)",)
    by_path = tmp_path / "data" / "twitter2015"
    assert load_split(None, str(by_path), "test").notes == (f"{by_path / 'test.txt'}: tags read as BIO (detected)",)
    assert load_split(tmp_path / "data", "twitter2015", "test", ReadOptions(scheme="iob1")).notes != ()


def _renamed(src: Path, dest: Path) -> Path:
    """``src`` with PER spelt ``person`` (a type no model here was trained on)."""
    dest.write_text(src.read_text(encoding="utf-8").replace("-PER", "-person"), encoding="utf-8")
    return dest


def _captions_without(corpus, image_id: str, dest: Path) -> Path:
    kept = [line for line in corpus.captions.read_text(encoding="utf-8").splitlines() if not line.startswith(f"{image_id}.")]
    dest.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return dest


def test_a_refused_train_prints_its_error_alone_not_the_data_notes_before_it(mscmt, corpus, tiny, tmp_path):
    """The valid split has a type train lacks (a note), and a caption is missing under ``--missing-images error`` (a refusal)."""
    split = corpus.data_dir / corpus.name
    valid = _renamed(split / "valid.txt", tmp_path / "valid.txt")
    dropped = read_conll(split / "train.txt")[0].image_id
    captions = _captions_without(corpus, dropped, tmp_path / "captions.txt")
    args = ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", "--context", "caption", "--epochs", "1"]
    args += ["--train", split / "train.txt", "--valid", valid, "--captions", captions, *tiny.model_path_args()]
    refused = mscmt([*args, "--missing-images", "error", "--out", tmp_path / "a"])
    one_line_error(refused, f"no caption for image {dropped!r} in {captions}", alone=True)
    assert refused.out == ""
    done = mscmt([*args, "--missing-images", "blank", "--out", tmp_path / "b", "--test", valid])  # valid read twice, said once
    assert done.code == 0, done.err
    said = " ".join((done.out + done.err).split())
    assert "types the label set lacks, scored as missed: valid person" in said
    assert [said.count(f"{f}: tags read as BIO (detected)") for f in (split / "train.txt", valid)] == [1, 1]


def test_a_refused_evaluate_prints_its_error_alone_not_the_data_notes_before_it(mscmt, corpus, context_run, tiny, tmp_path):
    test = _renamed(corpus.data_dir / corpus.name / "test.txt", tmp_path / "test.txt")
    dropped = read_conll(test)[0].image_id
    captions = _captions_without(corpus, dropped, tmp_path / "captions.txt")
    args = ["evaluate", context_run, "--test", test, "--images-dir", corpus.images_dir, "--captions", captions, *tiny.model_path_args()]
    refused = mscmt([*args, "--missing-images", "error"])
    one_line_error(refused, f"no caption for image {dropped!r}", alone=True)
    assert refused.out == ""
    done = mscmt([*args, "--missing-images", "blank"])
    assert done.code == 0, done.err
    said = " ".join((done.out + done.err).split())
    assert "types the label set lacks, scored as missed:" in said and "person" in said
    assert said.index("scored as missed") < said.index(f"scored {context_run}")
