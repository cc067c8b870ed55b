"""A new run directory: ``mscmt train --out`` never overwrites a run or a folder that is not ours (engine/rundir.py).

Every refusal is one line (exit 2) naming the option or the file, before anything was written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mscmt_cli.errors import MscmtError
from tests.cli_support import copy_run as _copy_run
from tests.cli_support import one_line_error as _one_line_error
from tests.cli_support import snapshot as _snapshot
from tests.cli_support import train_args


def test_finished_run_without_checkpoint_is_not_overwritten(trained_run, tiny, corpus, tmp_path, mscmt):
    run = _copy_run(trained_run, tmp_path / "R", drop=("checkpoint",))
    before = _snapshot(run)
    _one_line_error(mscmt(train_args(corpus, run, tiny)), f"--out {run} already holds a run", "model", "run.json")
    assert _snapshot(run) == before
    (run / "test_scores.json").unlink()  # any one record is enough to refuse
    for name in ("model", "run.json"):
        only = _copy_run(trained_run, tmp_path / f"only-{name}", drop=tuple(n.name for n in trained_run.iterdir() if n.name != name))
        _one_line_error(mscmt(train_args(corpus, only, tiny)), "already holds a run", name)


def test_out_that_is_not_a_new_directory_is_refused_before_loading(tiny, tmp_path, monkeypatch, mscmt):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"k")
    before = _snapshot(tmp_path)
    missing_data = ["--data-dir", tmp_path / "no-such-data"]  # reaching the data would fail differently
    cases = [
        ("", "--out: an empty path (or '.') means the current directory"),
        (".", "--out: an empty path"),
        (tmp_path / "notes.txt", "is a file, not a directory"),
        (tmp_path / "notes.txt" / "run", f"{tmp_path / 'notes.txt'} is a file"),
        (tmp_path / "photos", "is not empty (it holds a.jpg)"),
    ]
    for out, needle in cases:
        result = mscmt(
            ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *missing_data, "--out", out, *tiny.model_path_args()]
        )
        _one_line_error(result, needle)
    monkeypatch.setenv("MSCMT_OUT", "")
    _one_line_error(mscmt(["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *missing_data]), "MSCMT_OUT", "empty path")
    monkeypatch.delenv("MSCMT_OUT")
    monkeypatch.setenv("MSCMT_CACHE_DIR", "")  # the feature cache would be written into the current directory
    _one_line_error(
        mscmt(["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *missing_data, "--out", tmp_path / "new"]),
        "MSCMT_CACHE_DIR",
        "empty path",
    )
    assert _snapshot(tmp_path) == before


def test_fresh_run_dir_rules(trained_run, tmp_path):
    from mscmt_cli.engine.rundir import check_fresh_run_dir
    from mscmt_cli.engine.trainer import train
    from mscmt_cli.settings import Settings

    assert check_fresh_run_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_fresh_run_dir(tmp_path / "empty")
    # killed during its first epoch: run.json and an empty metrics.jsonl, nothing to lose
    killed = _copy_run(trained_run, tmp_path / "killed", drop=("checkpoint", "model", "test_scores.json"))
    (killed / "metrics.jsonl").write_text("")
    (killed / ".checkpoint.abc123").mkdir()
    check_fresh_run_dir(killed)
    (killed / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(MscmtError, match="already holds a run"):
        check_fresh_run_dir(killed)
    with pytest.raises(MscmtError, match="--resume"):
        check_fresh_run_dir(trained_run)
    for bad in ("", "."):  # the library entry point refuses too, whatever the CLI passes
        with pytest.raises(MscmtError, match="--out: an empty path"):
            train(Settings.model_validate({"out": Path(bad)}))
    with pytest.raises(MscmtError, match="--resume .*does not exist"):
        train(Settings.model_validate({"out": tmp_path / "nope"}), resume=True)
