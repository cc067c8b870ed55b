"""The image store on every awkward image: missing, empty, truncated, CMYK, 16-bit, palette, bombs."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mscmt_cli.data.images import BLANK_DIGEST, ImageStore, decode_image
from mscmt_cli.errors import MscmtError


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _encode(Image.new("CMYK", (20, 10), (0, 255, 0, 0)), "JPEG"),
        lambda: _encode(Image.new("I;16", (20, 10), 40000), "PNG"),
        lambda: _encode(Image.new("P", (20, 10), 3), "PNG"),
        lambda: _encode(Image.new("RGBA", (20, 10), (255, 0, 0, 128)), "PNG"),
        lambda: _encode(Image.new("L", (20, 10), 7), "JPEG"),
    ],
)
def test_odd_modes_become_rgb(make):
    img = decode_image(make(), "x.jpg")
    assert img.mode == "RGB" and img.size == (20, 10)


def test_sixteen_bit_keeps_its_brightness():
    img = decode_image(_encode(Image.new("I;16", (4, 4), 65535), "PNG"), "x.png")
    assert img.getpixel((0, 0))[0] >= 250


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "unreadable image"),
        (_encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:200], "unreadable image"),
        (b"not an image at all", "unreadable image"),
    ],
)
def test_broken_files_are_named(data, fragment):
    with pytest.raises(MscmtError, match=f"^bad.jpg: {fragment}"):
        decode_image(data, "bad.jpg")


def test_decompression_bomb_is_refused():
    huge = _encode(Image.new("1", (12000, 12000)), "PNG")  # 144 Mpixel, tiny file
    with pytest.raises(MscmtError, match="too large|decompression bomb"):
        decode_image(huge, "bomb.png")


def test_policies(tmp_path):
    (tmp_path / "ok.jpg").write_bytes(_encode(Image.new("RGB", (8, 8), (9, 9, 9)), "JPEG"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    blank = ImageStore(tmp_path, "blank")
    assert blank.load("ok").digest != BLANK_DIGEST
    assert blank.load("empty").digest == BLANK_DIGEST and blank.load("gone").digest == BLANK_DIGEST
    assert blank.report().startswith("2 missing or unreadable image(s) replaced by a blank image")
    strict = ImageStore(tmp_path, "error")
    with pytest.raises(MscmtError, match=r"empty.jpg: unreadable image"):
        strict.load("empty")
    with pytest.raises(MscmtError, match=r"gone.jpg: image not found"):
        strict.load("gone")
    with pytest.raises(MscmtError, match="unknown missing-image policy 'skip'"):
        ImageStore(tmp_path, "skip")
    with pytest.raises(MscmtError, match="does not exist"):
        ImageStore(tmp_path / "nope")


def test_debug_flag_shows_the_traceback(mscmt, tmp_path):
    plain = mscmt(["evaluate", tmp_path, "--data-dir", tmp_path])
    assert plain.code == 2 and "Traceback" not in plain.err and "no trained model here" in plain.err
    debug = mscmt(["--debug", "evaluate", tmp_path, "--data-dir", tmp_path])
    assert debug.code == 2 and "Traceback" in debug.err
