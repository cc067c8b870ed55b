"""The image store on every awkward image: missing, empty, truncated, CMYK, 16-bit, palette, bombs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mscmt_cli.data.images import ImageResolver, decode_image
from mscmt_cli.errors import MscmtError
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import image_bytes
from tests.tagging_support import write_lines as _write_lines


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
    from mscmt_cli.features import TokenStore
    from tests.test_image_tokens import MeanColour

    inputs = [ImageResolver(tmp_path).resolve(i) for i in ("ok", "empty", "gone")]
    blank = TokenStore(MeanColour(), policy="blank")
    feats, errors = blank.features(inputs)
    assert not errors and np.array_equal(feats[1], feats[2]) and not np.array_equal(feats[0], feats[1])  # type: ignore[arg-type]
    assert blank.report().startswith("2 missing or unreadable image(s) replaced by a blank image")  # type: ignore[union-attr]
    strict = TokenStore(MeanColour(), policy="error")
    feats, errors = strict.features(inputs)
    assert feats[0] is not None and feats[1] is None and sorted(errors) == [1, 2]
    assert f"{tmp_path / 'empty.jpg'}: unreadable image" in errors[1]
    assert errors[2] == f"image 'gone' not found (looked in {tmp_path} and the working directory)"
    with pytest.raises(MscmtError, match="unknown missing-image policy 'skip'"):
        TokenStore(MeanColour(), policy="skip")


def test_debug_flag_shows_the_traceback(mscmt, tmp_path):
    plain = mscmt(["evaluate", tmp_path, "--data-dir", tmp_path])
    assert plain.code == 2 and "Traceback" not in plain.err and "no trained model here" in plain.err
    debug = mscmt(["--debug", "evaluate", tmp_path, "--data-dir", tmp_path])
    assert debug.code == 2 and "Traceback" in debug.err


# --- what an image may cost is bounded before it is decoded -----------------------------------------------------------


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

    from mscmt_cli.features import TokenStore
    from mscmt_cli.tagging.server import create_app
    from tests.test_image_tokens import MeanColour

    with pytest.raises(MscmtError, match="tweet 0: .*refused: sides over"):
        tagger.tag("Obama", image=Image.new("RGB", (3000, 2)))
    with pytest.raises(MscmtError, match="tweet 0: .*refused: sides over"):
        tagger.tag("Obama", image=long_thin_png)
    answer = TestClient(create_app(tagger)).post("/tag", json={"text": "Obama", "image": base64.b64encode(long_thin_png).decode()})
    assert answer.status_code == 422 and "refused: sides over" in answer.json()["detail"]

    (tmp_path / "thin.png").write_bytes(long_thin_png)
    (tmp_path / "big.png").write_bytes(_png_header(100_000, 100_000))
    inputs = [ImageResolver(tmp_path).resolve(i) for i in ("thin", "big")]
    blank = TokenStore(MeanColour(), policy="blank")
    feats, errors = blank.features(inputs)
    assert not errors and np.array_equal(feats[0], feats[1]) and len(blank.substituted) == 2  # type: ignore[arg-type]
    _, errors = TokenStore(MeanColour(), policy="error").features(inputs)
    assert errors[0].startswith(f"{tmp_path / 'thin.png'}: image of 63000000x1 pixels refused")


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
