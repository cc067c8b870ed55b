"""Hostile input to tagging, serving, images, captions and the JSON mscmt writes (issue 12).

Each test is about a class of input, not one example: every path to the same
file, every image shape, every non-finite number. What is checked is what a
user sees: their data intact, every good line written, or one line naming the
option or file (and line) with exit code 2 and no traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.strict_json import loads as strict_loads
from tests.cli_support import train_args
from tests.tagging_support import image_bytes

NON_FINITE_TEXTS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "2.5e+308", "-123456789e999"]


def _clip_args(tiny) -> list[str]:
    return ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _one_line_error(result, *needles: str) -> None:
    """Exit 2 and an ``error:`` line on stderr naming every needle, no traceback."""
    assert result.code == 2, (result.code, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    assert all(n in errors[0] for n in needles), (needles, errors[0])
    assert "Traceback" not in result.err and "unexpected" not in result.err


@contextmanager
def nan_weights(tagger) -> Iterator[None]:
    """Make the tagger's classifier produce NaN scores, then restore it."""
    head = tagger.model.classifier
    saved = head.weight.detach().clone()
    with torch.no_grad():
        head.weight.fill_(float("nan"))
    try:
        yield
    finally:
        with torch.no_grad():
            head.weight.copy_(saved)


# --- 8: every JSON mscmt writes is strict JSON ---------------------------------------------------------------------

non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5))


@st.composite
def records_with_one_non_finite(draw) -> tuple[dict, str]:
    """A nested record holding exactly one NaN/inf, and the path to it as :func:`first_non_finite` names it."""
    record = draw(st.dictionaries(st.text("abc", min_size=1, max_size=3), json_leaf, max_size=4))
    depth = draw(st.integers(0, 2))
    value, path = draw(non_finite), ""
    holder: dict = record
    for level in range(depth):
        key = f"k{level}"
        holder[key] = [draw(json_leaf), {}]
        holder, path = holder[key][1], f"{path}.{key}[1]" if path else f"{key}[1]"
    holder["bad"] = value
    return record, f"{path}.bad" if path else "bad"


@settings(max_examples=40, deadline=None)
@given(records_with_one_non_finite())
def test_run_records_refuse_non_finite_numbers_and_keep_the_old_file(tmp_path_factory, case):
    from mscmt_cli.engine.rundir import METRICS_FILE, append_metrics, rewrite_metrics, write_json

    record, where = case
    run = tmp_path_factory.mktemp("run")
    write_json(run / "run.json", {"ok": 1.5})
    append_metrics(run, {"epoch": 1, "f1": 0.5})
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for write in (
        lambda: write_json(run / "run.json", record),
        lambda: append_metrics(run, record),
        lambda: rewrite_metrics(run, [{"epoch": 1}, record]),
    ):
        with pytest.raises(MscmtError) as err:
            write()
        message = str(err.value)
        assert where in message and "not JSON" in message and ("run.json" in message or METRICS_FILE in message)
        assert "\n" not in message
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a refused record must leave the files as they were"
    assert [strict_loads(line) for line in (run / METRICS_FILE).read_text().splitlines()] == [{"epoch": 1, "f1": 0.5}]


@pytest.mark.parametrize("number", NON_FINITE_TEXTS)
def test_non_finite_numbers_anywhere_in_an_input_line_make_it_a_bad_line(number):
    from mscmt_cli.tagging.inputs import BadLine, TagInput, parse_json_line

    for line in (f'{{"text": "a b", "x": {number}}}', f'{{"text": "a b", "deep": [1, {{"y": [{number}]}}]}}', f"{number}"):
        item = parse_json_line(7, line.encode())
        assert isinstance(item, BadLine) and item.line == 7 and "JSON" in item.message, (line, item)
    assert isinstance(parse_json_line(1, b'{"text": "a", "x": 1e308, "y": -0.0, "z": 123456789012345678901234567890}'), TagInput)


@pytest.mark.parametrize("depth", [99, 100, 980, 995, 100_000])
def test_nesting_is_limited_at_a_fixed_depth_so_every_line_read_can_be_written(depth):
    from mscmt_cli.tagging.inputs import MAX_NESTING, BadLine, TagInput, parse_json_line
    from mscmt_cli.tagging.tagger import TagResult

    item = parse_json_line(3, ('{"text": "a", "x": ' + "[" * depth + "]" * depth + "}").encode())
    if depth + 1 <= MAX_NESTING:
        assert isinstance(item, TagInput)
        from mscmt_cli.tagging.jobs import output_line

        result = TagResult(item.doc, ["O"], [1.0], [])
        assert strict_loads(output_line(item.record, result))["x"] == item.record["x"]
    else:
        assert isinstance(item, BadLine) and item.line == 3 and ("nested deeper" in item.message or "invalid JSON" in item.message)


def test_tag_output_is_strict_json_and_keeps_every_good_line(mscmt, trained_run, tiny, tmp_path):
    lines = []
    for i, number in enumerate(NON_FINITE_TEXTS):
        lines += [json.dumps({"id": f"good{i}", "text": "Obama in Paris", "x": 1e308}), f'{{"id": "bad{i}", "text": "x", "n": {number}}}']
    src = _write_lines(tmp_path / "in.jsonl", lines)
    result = mscmt(["tag", src, "--model", trained_run, "--out", tmp_path / "out.jsonl", *_clip_args(tiny)])
    assert result.code == 0, result.err
    rows = [strict_loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"good{i}" for i in range(len(NON_FINITE_TEXTS))]
    for k in range(len(NON_FINITE_TEXTS)):
        assert f"in.jsonl:{2 * k + 2}: invalid JSON" in result.err


def test_a_model_scoring_nan_gives_bad_lines_and_a_500_never_nan_json(tagger, tmp_path):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.inputs import iter_jsonl
    from mscmt_cli.tagging.server import create_app
    from mscmt_cli.tagging.stream import NOT_FINITE, tag_stream

    written, bad = [], []
    with nan_weights(tagger):
        tally = tag_stream(
            tagger,
            iter_jsonl([b'{"text": "Obama in Paris"}\n', b'{"text": "again"}\n']),
            on_result=lambda item, result: written.append(item),
            on_bad=bad.append,
        )
        answer = TestClient(create_app(tagger)).post("/tag", json={"text": "Obama in Paris"})
    assert not written and tally.bad == 2 and [b.line for b in bad] == [1, 2] and bad[0].message == NOT_FINITE
    assert answer.status_code == 500 and "not finite" in answer.json()["detail"]


# --- 2 and 14: an output never replaces what the run reads; a directory is not a file ------------------------------


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


# --- 6: tag --explain follows the missing-image policy and never stops the run -------------------------------------


def test_tag_explain_notes_missing_and_unreadable_images_and_keeps_every_line(mscmt, trained_run, tiny, corpus, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    good = sorted(corpus.images_dir.glob("*.jpg"))[0]
    (images / "good.jpg").write_bytes(good.read_bytes())
    (images / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (images / "folder.jpg").mkdir()
    refs = ["good.jpg", "bad.jpg", "gone.jpg", "folder.jpg", "good.jpg"]
    src = _write_lines(tmp_path / "in.jsonl", [json.dumps({"n": i, "text": "Obama in Paris", "image": r}) for i, r in enumerate(refs)])
    args = ["tag", src, "--model", trained_run, "--images", images, *_clip_args(tiny)]

    result = mscmt([*args, "--explain", tmp_path / "pages", "--out", tmp_path / "o.jsonl"])
    assert result.code == 0, result.err
    assert [json.loads(r)["n"] for r in (tmp_path / "o.jsonl").read_text().splitlines()] == list(range(5))
    pages = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "pages").iterdir()}
    assert sorted(pages) == [f"line-{i:06d}.html" for i in range(1, 6)]
    for line, why in ((2, "bad.jpg: unreadable image"), (3, "gone.jpg"), (4, "folder.jpg")):
        assert "Image not shown" in pages[f"line-{line:06d}.html"] and why in pages[f"line-{line:06d}.html"]
        assert "neutral blank image (policy &#x27;blank&#x27;)" in pages[f"line-{line:06d}.html"]
    assert 'src="data:image/png' in pages["line-000001.html"] and 'src="data:image/png' in pages["line-000005.html"]
    assert "3 missing or unreadable image(s) replaced by a blank image" in result.err

    result = mscmt([*args, "--explain", tmp_path / "strict-pages", "--out", tmp_path / "o2.jsonl", "--missing-images", "error"])
    assert result.code == 0, result.err
    assert [json.loads(r)["n"] for r in (tmp_path / "o2.jsonl").read_text().splitlines()] == [0, 4]
    assert all(f"in.jsonl:{n}: " in result.err for n in (2, 3, 4))
    assert sorted(p.name for p in (tmp_path / "strict-pages").iterdir()) == ["line-000001.html", "line-000005.html"]


# --- 5: what an image may cost is bounded before it is decoded ------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG file that declares ``width x height`` RGB pixels and holds none (Pillow reads the size only)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def long_thin_png() -> bytes:
    """The sweep's image: a real 63,000,000 x 1 PNG (about 61 KB), under the pixel limit."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (63_000_000, 1), 0).save(buf, format="PNG")
    return buf.getvalue()


EXTREME_SHAPES = [(63_000_000, 1), (1, 63_000_000), (5_000, 2), (2, 5_000), (100_000, 100_000), (8_001, 8_000), (2**31 - 1, 2**31 - 1)]


def _extreme_images(long_thin_png: bytes) -> dict[str, bytes]:
    images = {f"declared-{w}x{h}.png": _png_header(w, h) for w, h in EXTREME_SHAPES}
    images["real-63000000x1.png"] = long_thin_png
    images["real-1x60.png"] = image_bytes(size=(1, 60))
    return images


def test_extreme_shapes_and_declared_sizes_are_refused_before_decoding(long_thin_png, monkeypatch):
    from mscmt_cli.data import images as image_module
    from mscmt_cli.data.images import decode_image

    for name, data in _extreme_images(long_thin_png).items():
        with pytest.raises(MscmtError) as err:
            decode_image(data, name)
        assert str(err.value).startswith(f"{name}: ") and "\n" not in str(err.value), str(err.value)
    assert decode_image(image_bytes(size=(50, 1)), "ok").size == (50, 1)
    monkeypatch.setattr(image_module, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(MscmtError, match="x.png: image file over 100 bytes"):
        decode_image(image_bytes(size=(64, 64)), "x.png")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300))
def test_an_image_is_decoded_exactly_when_its_sides_are_within_the_ratio(width, height):
    from mscmt_cli.data.images import MAX_ASPECT_RATIO, decode_image

    data = image_bytes(size=(width, height))
    if max(width, height) <= MAX_ASPECT_RATIO * min(width, height):
        assert decode_image(data, "x").size == (width, height)
    else:
        with pytest.raises(MscmtError, match=f"refused: sides over {MAX_ASPECT_RATIO} to 1"):
            decode_image(data, "x")


def test_tag_with_extreme_images_keeps_every_good_line_under_both_policies(mscmt, trained_run, tiny, long_thin_png, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    extreme = _extreme_images(long_thin_png)
    for name, data in extreme.items():
        (images / name).write_bytes(data)
    (images / "fine.png").write_bytes(image_bytes())
    refs = ["fine.png", *extreme, "fine.png"]
    src = _write_lines(tmp_path / "in.jsonl", [json.dumps({"n": i, "text": "Obama in Paris", "image": r}) for i, r in enumerate(refs)])
    args = ["tag", src, "--model", trained_run, "--images", images, *_clip_args(tiny)]

    result = mscmt([*args, "--out", tmp_path / "blank.jsonl"])
    assert result.code == 0, result.err
    assert [json.loads(r)["n"] for r in (tmp_path / "blank.jsonl").read_text().splitlines()] == list(range(len(refs)))
    assert f"{len(extreme)} missing or unreadable image(s) replaced by a blank image" in result.err

    result = mscmt([*args, "--out", tmp_path / "error.jsonl", "--missing-images", "error"])
    assert result.code == 0, result.err
    assert [json.loads(r)["n"] for r in (tmp_path / "error.jsonl").read_text().splitlines()] == [0, len(refs) - 1]
    for line, name in enumerate(extreme, start=2):
        assert f"in.jsonl:{line}: {images / name}: " in result.err


def test_the_api_the_service_and_the_training_store_refuse_extreme_images(tagger, long_thin_png, tmp_path):
    import base64

    from fastapi.testclient import TestClient
    from PIL import Image

    from mscmt_cli.data.images import BLANK_DIGEST, ImageStore
    from mscmt_cli.tagging.server import create_app

    with pytest.raises(MscmtError, match="tweet 0: .*refused: sides over"):
        tagger.tag("Obama", image=Image.new("RGB", (3000, 2)))
    with pytest.raises(MscmtError, match="tweet 0: .*refused: sides over"):
        tagger.tag("Obama", image=long_thin_png)
    answer = TestClient(create_app(tagger)).post("/tag", json={"text": "Obama", "image": base64.b64encode(long_thin_png).decode()})
    assert answer.status_code == 422 and "refused: sides over" in answer.json()["detail"]

    (tmp_path / "thin.png").write_bytes(long_thin_png)
    (tmp_path / "big.png").write_bytes(_png_header(100_000, 100_000))
    blank = ImageStore(tmp_path, "blank")
    assert [blank.load(i).digest for i in ("thin", "big")] == [BLANK_DIGEST, BLANK_DIGEST] and blank.substituted == ["thin", "big"]
    with pytest.raises(MscmtError, match=f"{tmp_path / 'thin.png'}: image of 63000000x1 pixels refused"):
        ImageStore(tmp_path, "error").load("thin")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 100)), max_size=12), st.integers(1, 100))
def test_pixel_bounded_chunks_keep_order_and_stay_under_the_budget(sizes, budget):
    from PIL import Image

    from mscmt_cli.data.images import pixel_bounded, pixel_count

    def load(k: int):
        return None if sizes[k] is None else Image.new("L", (sizes[k] or 1, 1))

    chunks = list(pixel_bounded(range(len(sizes)), load, budget))
    assert [k for keys, _ in chunks for k in keys] == [k for k, s in enumerate(sizes) if s is not None]
    for keys, contents in chunks:
        assert len(keys) == len(contents) >= 1
        assert len(contents) == 1 or sum(pixel_count(c) for c in contents) <= budget


# --- 7: a line over the size limit is a bad line, read past without being held ---------------------------------------


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
    from mscmt_cli.tagging.inputs import MAX_LINE_BYTES, BadLine, read_inputs

    stream = _HugeLineStream(200 * 2**20)
    items = list(read_inputs(stream))
    assert [i.line for i in items] == [1, 2, 3] and [i.record["text"] for i in (items[0], items[2])] == ["first", "last"]
    assert (
        isinstance(items[1], BadLine)
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


# --- 12: the service answers 4xx with a detail, never 500, and text is never silently replaced ----------------------


@pytest.fixture(scope="module")
def client(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import Limits, create_app

    limits = Limits(max_body_bytes=200_000, max_image_bytes=100_000, max_batch=4, max_text_chars=500, max_tokens=100)
    return TestClient(create_app(tagger, limits))


def _json_post(client, path: str, raw: str):
    return client.post(path, content=raw.encode("ascii"), headers={"content-type": "application/json"})


@settings(max_examples=25, deadline=None)
@given(st.integers(0xD800, 0xDFFF), st.sampled_from(["text", "tokens", "caption", "batch"]), st.text("ab ", min_size=1, max_size=6))
def test_lone_surrogates_anywhere_are_a_400_naming_the_field(client, code, field, prefix):
    escape = f"\\u{code:04x}"
    body = {
        "text": f'{{"text": "{prefix}{escape}"}}',
        "tokens": f'{{"tokens": ["ok", "{prefix}{escape}"]}}',
        "caption": f'{{"text": "Obama", "caption": "{prefix}{escape}"}}',
        "batch": f'{{"items": [{{"text": "fine"}}, {{"text": "{prefix}{escape}"}}]}}',
    }[field]
    answer = _json_post(client, "/tag/batch" if field == "batch" else "/tag", body)
    assert answer.status_code == 400, answer.text
    name = {"text": "'text'", "tokens": "'tokens'[1]", "caption": "'caption'", "batch": "items[1]: 'text'"}[field]
    assert f"{name} is not valid Unicode: lone surrogate" in answer.json()["detail"]


def test_caption_text_and_form_fields_over_the_limit_or_not_utf8(client):
    assert client.post("/tag", json={"text": "Obama", "caption": "c" * 501}).status_code == 413
    assert "'caption' over 500 characters" in client.post("/tag", json={"text": "Obama", "caption": "c" * 501}).json()["detail"]
    multipart = [
        (
            b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\nObama \xff\xfe in Paris\r\n--zz--\r\n',
            "multipart/form-data; boundary=zz",
        ),
        (
            b'--zz\r\nContent-Disposition: form-data; name="caption"\r\n\r\n\xc3\r\n--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--zz--\r\n',
            "multipart/form-data; boundary=zz",
        ),
        (b"text=Obama+%FF+Paris", "application/x-www-form-urlencoded"),
        (b"text=Obama \xe9", "application/x-www-form-urlencoded"),
    ]
    for body, kind in multipart:
        answer = client.post("/tag", content=body, headers={"content-type": kind})
        assert answer.status_code == 400 and "is not valid utf-8" in answer.json()["detail"], (body, answer.text)
    good = [
        (b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xc3\xa9 Obama\r\n--zz--\r\n', "multipart/form-data; boundary=zz"),
        (
            b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xe9 Obama\r\n--zz--\r\n',
            "multipart/form-data; boundary=zz; charset=latin-1",
        ),
        (b"text=caf%C3%A9+Obama", "application/x-www-form-urlencoded"),
    ]
    for body, kind in good:
        answer = client.post("/tag", content=body, headers={"content-type": kind})
        assert answer.status_code == 200 and answer.json()["text"] == "café Obama", answer.text
    files = {"image": ("x.png", image_bytes(), "image/png"), "other": ("y.png", image_bytes(), "image/png")}
    assert client.post("/tag", data={"text": "hi"}, files=files).status_code == 400
    assert client.post("/tag", data={"caption": "x"}, files={"text": ("t.txt", b"hi", "text/plain")}).status_code == 422


@pytest.mark.parametrize(
    "raw",
    [
        '{"text": "Obama \\u0000 Paris"}',
        '{"text": "a\\u2028b\\u0085c"}',
        '{"text": "x", "n": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"text": "x", "image": "\\ud800"}',
        '{"text": "x", "image": "data:,"}',
        '{"tokens": ["\\u0000"]}',
        '{"text": "x", "caption": ["a"]}',
        '{"text": {"a": 1}}',
        '"just a string"',
        "1e999",
        '{"text": "x", "y": -1e999}',
        "",
    ],
)
def test_odd_bodies_are_answered_below_500(client, raw):
    answer = _json_post(client, "/tag", raw) if raw.isascii() else None
    assert answer is not None and answer.status_code < 500, answer.text
    assert answer.status_code == 200 or answer.json()["detail"]


# --- 13: a captions file that is not text names its file and line ---------------------------------------------------


@pytest.mark.parametrize(
    "data, line, message",
    [
        (
            b'{"image": "1.jpg", "caption": "a"}\n{"image": "2.jpg", "caption": "dog \\ud800"}\n',
            2,
            "field 'caption' is not valid Unicode (lone surrogate",
        ),
        (b'{"image": "1.jpg", "caption": "a"}\n{"image": "\\udfff.jpg", "caption": "b"}\n', 2, "field 'image' is not valid Unicode"),
        (b'{"image": "1.jpg", "caption": "a", "score": NaN}\n', 1, "NaN is not valid JSON"),
        (b'{"image": "1.jpg", "caption": "a", "score": 1e999}\n', 1, "not a finite double"),
        (b'{"image": "1.jpg", "caption": "a", "n": ' + b"9" * 5000 + b"}\n", 1, "not valid JSON"),
        (b'{"image": "1.jpg", "caption": "a"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n", 2, "not valid JSON"),
        (b"1.jpg :ok\n2.jpg :caf\xe9 au lait\n", 2, "not valid UTF-8 (byte 0xe9 at byte 11 of the line)"),
        (b"1.jpg :ok\n2.jpg :\xed\xa0\x80 encoded surrogate\n", 2, "not valid UTF-8 (byte 0xed"),
        ("1.jpg :a dog\n2.jpg :a cat\n".encode("utf-16-le"), 1, "NUL character in the file (is it UTF-16?"),
        ("1.jpg :a dog\n".encode("utf-16"), 1, "not valid UTF-8"),
        (b"1.jpg :ok\n2.jpg :nul\x00inside\n", 2, "NUL character"),
    ],
)
def test_captions_that_are_not_text_name_the_file_and_line(tmp_path, data, line, message):
    from mscmt_cli.data.captions import read_captions
    from mscmt_cli.errors import DataError

    path = tmp_path / "captions.txt"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_captions(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_train_with_a_surrogate_in_the_captions_stops_naming_file_and_line(mscmt, corpus, tiny, tmp_path):
    from mscmt_cli.data.captions import read_captions

    lines = [json.dumps({"image": f"{k}.jpg", "caption": c}) for k, c in read_captions(corpus.captions).items()]
    lines[3] = '{"image": "x.jpg", "caption": "a dog \\ud83d"}'
    captions = _write_lines(tmp_path / "captions.jsonl", lines)
    extra = ["--captions", captions, "--model-path", f"caption={tiny.bert}"]
    result = mscmt(train_args(corpus, tmp_path / "run", tiny, image="caption", fusion=None, extra=extra))
    _one_line_error(result, f"{captions}:4: field 'caption' is not valid Unicode")
    with pytest.raises(MscmtError, match="is a directory"):
        read_captions(tmp_path)


# --- siblings: writes that fail, an --images that is not a directory ------------------------------------------------


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
