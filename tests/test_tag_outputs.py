"""Outputs of ``mscmt tag`` and ``mscmt explain`` never replace what the run reads (by any path); a directory is not a file.

Each refusal is one line naming the option (exit 2), and the user's files are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mscmt_cli.errors import MscmtError
from tests.cli_support import one_line_error as _one_line_error
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import write_lines as _write_lines


def _spellings(tmp_path: Path, target: Path) -> dict[str, str]:
    """Other paths to ``target`` (a file directly in ``tmp_path``, which is the working directory)."""
    import os

    (tmp_path / "sub").mkdir(exist_ok=True)
    (tmp_path / "link").unlink(missing_ok=True)
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "hard").unlink(missing_ok=True)
    os.link(target, tmp_path / "hard")
    return {
        "same": target.name,
        "dot": f"./{target.name}",
        "dotdot": f"sub/../{target.name}",
        "absolute": str(target),
        "symlink": "link",
        "hard link": "hard",
        "fd": f"/proc/self/cwd/{target.name}",
    }


@pytest.mark.parametrize("kind", ["same", "dot", "dotdot", "absolute", "symlink", "hard link", "fd"])
def test_tag_out_that_is_the_input_by_any_path_is_refused_and_the_input_kept(mscmt, trained_run, tiny, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    src = _write_lines(tmp_path / "a.jsonl", [json.dumps({"text": "Obama in Paris"}), json.dumps({"text": "two"})])
    before = src.read_bytes()
    out = _spellings(tmp_path, src)[kind]
    result = mscmt(["tag", "a.jsonl", "--model", trained_run, "--out", out, *_clip_args(tiny)])
    _one_line_error(result, f"--out {Path(out)}", "the input a.jsonl", "refusing to overwrite")
    assert src.read_bytes() == before


def test_outputs_that_are_captions_model_files_images_or_directories_are_refused(mscmt, trained_run, tiny, corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _write_lines(tmp_path / "a.jsonl", [json.dumps({"text": "Obama"})])
    captions = tmp_path / "captions.txt"
    captions.write_bytes(corpus.captions.read_bytes())
    config = trained_run / "model" / "config.json"
    image = sorted(corpus.images_dir.glob("*.jpg"))[0]
    guarded = {p: p.read_bytes() for p in (src, captions, config, image)}
    (tmp_path / "lnk").symlink_to(captions)
    base = ["tag", "a.jsonl", "--model", trained_run, *_clip_args(tiny)]
    _one_line_error(mscmt([*base, "--captions", captions, "--out", "lnk"]), "--out lnk", f"--captions {captions}")
    _one_line_error(mscmt([*base, "--out", config]), f"--out {config}", "a file of --model")
    _one_line_error(mscmt([*base, "--out", image]), f"--out {image}", "image file")
    _one_line_error(mscmt([*base, "--out", tmp_path]), f"--out {tmp_path}: is a directory")
    _one_line_error(mscmt([*base, "--out", ""]), "--out .: is a directory")
    page = ["explain", "--text", "Obama", "--model", trained_run, *_clip_args(tiny)]
    _one_line_error(mscmt([*page, "--image", image, "--out", image]), f"--out {image}", f"--image {image}")
    _one_line_error(mscmt([*page, "--out", tmp_path]), f"--out {tmp_path}: is a directory")
    _one_line_error(mscmt([*page, "--image", tmp_path, "--out", "p.html"]), f"--image {tmp_path}: is a directory")
    assert {p: p.read_bytes() for p in guarded} == guarded


def test_stdin_and_stdout_redirected_to_the_same_file_are_refused(tmp_path, monkeypatch):
    import sys

    from mscmt_cli.tagging.outputs import check_stdin, check_stdout

    src = _write_lines(tmp_path / "a.jsonl", [json.dumps({"text": "x"})])
    (tmp_path / "link").symlink_to(src)
    with open(src, encoding="utf-8") as stdin, open(src, "a", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdin", stdin)
        monkeypatch.setattr(sys, "stdout", stdout)
        with pytest.raises(MscmtError, match="--out .*link is the same file as the input \\(stdin\\)"):
            check_stdin(tmp_path / "link")
        with pytest.raises(MscmtError, match=f"stdout is redirected to the input {src}"):
            check_stdout([("the input", src)])
        check_stdout([("the input", tmp_path / "other.jsonl")])
        check_stdin(tmp_path / "other.jsonl")


def test_explain_dir_that_is_a_file_or_would_replace_an_input_or_the_output_is_refused(mscmt, trained_run, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pages = tmp_path / "pages"
    pages.mkdir()
    src = _write_lines(pages / "line-000001.html", [json.dumps({"text": "Obama"})])
    other = _write_lines(tmp_path / "b.jsonl", [json.dumps({"text": "Obama"})])
    base = ["tag", "--model", trained_run, *_clip_args(tiny)]
    _one_line_error(mscmt([*base, src, "--explain", "pages"]), "--explain pages", "line-000001.html would replace the input")
    _one_line_error(mscmt([*base, other, "--explain", "b.jsonl", "--out", "o.jsonl"]), "--explain b.jsonl: exists and is not a directory")
    _one_line_error(mscmt([*base, other, "--explain", "new", "--out", "new"]), "--explain new is the same path as --out new")
    _one_line_error(mscmt([*base, other, "--explain", "pages", "--out", "pages/line-000009.html"]), "would replace --out")
    assert not (tmp_path / "new").exists() and not (tmp_path / "o.jsonl").exists()
    assert json.loads(src.read_text()) == {"text": "Obama"}
