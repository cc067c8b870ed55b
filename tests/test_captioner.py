"""``mscmt caption`` and ``--captioner``: captions for new images from a tiny random BLIP captioner."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mscmt_cli.captioning import Captioner, CaptionMaker, caption_directory, clean_caption, repair_tail
from mscmt_cli.data.captions import read_captions
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache
from tests.cli_support import one_line_error
from tests.tiny_models import make_images
from tests.tiny_vlm import make_tiny_blip_captioner

IDS = ["101", "102", "103", "104", "105"]
#: Short captions keep the tests fast (the default is 30 tokens).
TOKENS = 8
LINE = re.compile(r"^(\S+\.jpg) :(.*)$")


@pytest.fixture(scope="session")
def blip(tmp_path_factory) -> Path:
    return make_tiny_blip_captioner(tmp_path_factory.mktemp("blip") / "blip")


@pytest.fixture(scope="session")
def captioner(blip) -> Captioner:
    return Captioner.load(blip, device="cpu", max_new_tokens=TOKENS)


@pytest.fixture
def images(tmp_path) -> Path:
    """Five readable images, one corrupt ``.jpg`` and a file that is not an image."""
    make_images(tmp_path / "img", IDS)
    (tmp_path / "img" / "099.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "img" / "notes.txt").write_text("not an image", encoding="utf-8")
    return tmp_path / "img"


@pytest.fixture
def count_generate(monkeypatch):
    """Count Captioner.generate calls; ``calls["fail_at"] = n`` makes the n-th call raise (a killed run)."""
    calls = {"n": 0, "fail_at": None}
    original = Captioner.generate

    def generate(self, images):
        calls["n"] += 1
        if calls["n"] == calls["fail_at"]:
            raise RuntimeError("killed")
        return original(self, images)

    monkeypatch.setattr(Captioner, "generate", generate)
    return calls


def _caption(mscmt, images: Path, blip: Path, out: Path, *extra):
    return mscmt(["caption", images, "--captioner", blip, "--out", out, "--device", "cpu", "--max-new-tokens", TOKENS, *extra])


def test_the_tiny_blip_loads_as_an_image_to_text_model_and_captions_deterministically(blip, captioner, images):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, BlipForConditionalGeneration, BlipProcessor

    assert isinstance(AutoModelForImageTextToText.from_pretrained(blip), BlipForConditionalGeneration)
    assert isinstance(AutoProcessor.from_pretrained(blip), BlipProcessor)
    pictures = [Image.open(images / f"{i}.jpg").convert("RGB") for i in IDS]
    batch = captioner.generate(pictures)
    assert batch == [captioner.generate([p])[0] for p in pictures]  # batching changes nothing (greedy)
    assert len(set(batch)) > 1 and all(c and c == clean_caption(c) for c in batch)
    assert captioner.identity().startswith("captioner|BlipForConditionalGeneration|")


def test_clean_caption_makes_one_line():
    assert clean_caption("  a\nred\r\n bus\u2028near\x00 x\t") == "a red bus near x"


def test_caption_writes_one_line_per_readable_image_in_file_name_order(mscmt, blip, captioner, images, tmp_path):
    out = tmp_path / "captions.txt"
    result = _caption(mscmt, images, blip, out, "--batch-size", "2", "--no-cache")
    assert result.code == 0, result.err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [LINE.match(line)[1] for line in lines] == [f"{i}.jpg" for i in IDS]  # 099.jpg unreadable, notes.txt not an image
    captions = read_captions(out)
    assert list(captions) == IDS
    assert all(captions[i] == captioner.generate([_pil(images / f"{i}.jpg")])[0] for i in IDS)
    assert "099.jpg: unreadable image" in result.err and "1 unreadable image(s) skipped" in result.err
    assert "5 caption(s) appended" in result.err


def test_a_second_run_skips_every_image_and_the_cache_serves_a_new_file(mscmt, blip, images, tmp_path, count_generate):
    cache = ["--cache-dir", tmp_path / "cache"]
    out = tmp_path / "captions.txt"
    assert _caption(mscmt, images, blip, out, "--batch-size", "2", *cache).code == 0
    first, calls = out.read_bytes(), count_generate["n"]
    assert calls == 3  # 5 images, 2 per call
    again = _caption(mscmt, images, blip, out, *cache)
    assert again.code == 0 and out.read_bytes() == first and count_generate["n"] == calls
    assert "0 caption(s) appended" in again.err and "5 of 6 image(s) were already there" in again.err
    other = tmp_path / "other.txt"
    assert _caption(mscmt, images, blip, other, *cache).code == 0
    assert other.read_bytes() == first and count_generate["n"] == calls  # every caption from the cache


def test_a_killed_run_then_a_rerun_writes_what_an_uninterrupted_run_writes(mscmt, blip, images, tmp_path, count_generate):
    whole = tmp_path / "whole.txt"
    assert _caption(mscmt, images, blip, whole, "--batch-size", "2", "--no-cache").code == 0
    killed = tmp_path / "killed.txt"
    count_generate.update(n=0, fail_at=2)
    result = _caption(mscmt, images, blip, killed, "--batch-size", "2", "--no-cache")
    assert result.code == 1 and "killed" in result.err
    assert killed.read_text(encoding="utf-8").splitlines() == ["101.jpg :" + read_captions(whole)["101"]]  # batch 1: 099 (unreadable), 101
    count_generate.update(fail_at=None)
    assert _caption(mscmt, images, blip, killed, "--batch-size", "2", "--no-cache").code == 0
    assert killed.read_bytes() == whole.read_bytes()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1))
def test_a_file_cut_anywhere_is_repaired_and_completed(captioner, images, tmp_path, cut):
    maker = CaptionMaker(captioner, FeatureCache(tmp_path / "cache"), batch_size=2)  # generates in the first example only
    whole = tmp_path / "whole.txt"
    if not whole.exists():
        caption_directory(images, whole, maker)
    full = whole.read_bytes()
    out = tmp_path / "cut.txt"
    out.write_bytes(full[: round(cut * len(full))])
    tally = caption_directory(images, out, maker)
    assert out.read_bytes() == full
    assert tally.repaired == (round(cut * len(full)) not in (0, *[i + 1 for i, b in enumerate(full) if b == ord("\n")]))


def test_repair_tail_drops_only_a_partial_last_line(tmp_path):
    path = tmp_path / "c.txt"
    for data, kept in ((b"", b""), (b"a.jpg :x\n", b"a.jpg :x\n"), (b"a.jpg :x\nb.jp", b"a.jpg :x\n"), (b"b.jp", b"")):
        path.write_bytes(data)
        assert repair_tail(path) == (data != kept) and path.read_bytes() == kept
    path.write_bytes(b"a.jpg :x\n" + b"y" * 200_000)  # the partial line is longer than one read
    assert repair_tail(path) and path.read_bytes() == b"a.jpg :x\n"


def test_missing_images_error_stops_at_the_unreadable_image_after_the_lines_before_it(mscmt, blip, tmp_path):
    make_images(tmp_path / "img", ["a", "c"])
    (tmp_path / "img" / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "captions.txt"
    result = _caption(mscmt, tmp_path / "img", blip, out, "--missing-images", "error", "--no-cache")
    one_line_error(result, "b.jpg: unreadable image", alone=True)
    assert list(read_captions(out)) == ["a"]


def test_an_output_that_would_replace_an_input_is_refused(mscmt, blip, images, tmp_path):
    (tmp_path / "link.txt").symlink_to(images / "101.jpg")
    os.link(images / "102.jpg", tmp_path / "hard.txt")
    cases = {
        images: "is a directory",
        images / "101.jpg": "is an image file",
        tmp_path / "link.txt": "refusing to overwrite it",
        tmp_path / "hard.txt": "refusing to overwrite it",
        images / "new.png": "an image name inside the images directory",
        blip / "config.json": "is the same file as a file of --captioner",
    }
    before = {p: p.read_bytes() for p in images.iterdir()}
    for out, message in cases.items():
        result = _caption(mscmt, images, blip, out)
        assert result.code == 2 and message in result.err, (out, result.err)
    assert {p: p.read_bytes() for p in images.iterdir()} == before


def test_usage_errors_are_one_line(mscmt, blip, tiny, images, tmp_path):
    out = tmp_path / "c.txt"
    cases = [
        (["caption", images, "--out", out], "--captioner is required"),
        (["caption", tmp_path / "nowhere", "--captioner", blip, "--out", out], "not found"),
        (["caption", images, "--captioner", "Salesforce/blip2-opt-2.7b", "--out", out], "pass --captioner /path/to/blip2-opt-2.7b"),
        (["caption", images, "--captioner", tiny.bert, "--out", out], "captioner: cannot load local model directory"),
    ]
    for args, message in cases:
        one_line_error(mscmt(args), message, alone=True)
    out.write_text('{"image": "a.jpg", "caption": "x"}\n', encoding="utf-8")
    assert "holds JSON Lines" in mscmt(["caption", images, "--captioner", blip, "--out", out]).err
    out.write_text("not a captions line\n", encoding="utf-8")
    result = mscmt(["caption", images, "--captioner", blip, "--out", out])
    assert result.code == 2 and "is not a captions file" in result.err and out.read_text() == "not a captions line\n"


def test_cache_info_and_clear_know_caption_entries(mscmt, blip, images, tmp_path):
    cache = tmp_path / "cache"
    assert _caption(mscmt, images, blip, tmp_path / "c.txt", "--cache-dir", cache).code == 0
    [(_, identity, count, size)] = FeatureCache(cache).info()
    assert identity.startswith("captioner|") and count == len(IDS) and size > 0
    assert "captioner|" in mscmt(["cache", "info", "--cache-dir", cache]).out
    assert mscmt(["cache", "clear", "--cache-dir", cache]).code == 0
    assert list(cache.iterdir()) == []


def test_unreadable_inputs_come_back_as_errors_and_the_rest_is_captioned(captioner, images):
    maker = CaptionMaker(captioner, batch_size=8)
    made = maker.captions([str(images / "101.jpg"), str(images / "099.jpg"), str(images / "gone.jpg"), (images / "101.jpg").read_bytes()])
    assert isinstance(made[0], str) and made[3] == made[0]
    assert isinstance(made[1], MscmtError) and "unreadable image" in str(made[1])
    assert isinstance(made[2], MscmtError) and "image not found" in str(made[2])
    assert maker.generated == 1  # the same bytes twice: one caption


# -- tagging with a captioner -----------------------------------------------------------------


@pytest.fixture
def caption_run(tiny, tmp_path) -> Path:
    """A caption-based model (bertweet + caption:bert-base + gated + crf, untrained), saved as a run."""
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble, save_model
    from mscmt_cli.registry import Registry

    paths = {"bertweet": str(tiny.bertweet), "caption:bert-base": str(tiny.bert)}
    components = Components(text="bertweet", image="caption:bert-base", fusion="gated", decoder="crf")
    assembled = assemble(Registry.from_entry_points(), components, list(LABELS), paths)
    save_model(tmp_path / "run" / "model", assembled.model, assembled.spec)
    return tmp_path / "run"


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_tag_with_a_captioner_tags_every_line_as_with_the_written_captions(mscmt, blip, caption_run, images, tmp_path):
    records = [{"text": f"tweet {i} in Paris", "image": f"{i}.jpg"} for i in IDS] + [
        {"text": "given", "image": "101.jpg", "caption": "a bus"}
    ]
    src = _jsonl(tmp_path / "in.jsonl", records)
    common = ["tag", src, "--model", caption_run, "--images", images, "--missing-images", "error", "--cache-dir", tmp_path / "cache"]
    live = mscmt(
        [*common, "--captioner", blip, "--max-new-tokens", TOKENS, "--out", tmp_path / "live.jsonl", "--explain", tmp_path / "pages"]
    )
    assert live.code == 0, live.err
    tagged = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [t["text"] for t in tagged] == [r["text"] for r in records] and all(t["tags"] for t in tagged)
    assert _caption(mscmt, images, blip, tmp_path / "captions.txt", "--cache-dir", tmp_path / "cache").code == 0
    written = mscmt([*common, "--captions", tmp_path / "captions.txt", "--out", tmp_path / "written.jsonl"])
    assert written.code == 0, written.err
    assert (tmp_path / "written.jsonl").read_bytes() == (tmp_path / "live.jsonl").read_bytes()
    captions = read_captions(tmp_path / "captions.txt")
    assert captions["101"] in (tmp_path / "pages" / "line-000001.html").read_text(encoding="utf-8")  # the explain page shows it
    assert "a bus" in (tmp_path / "pages" / "line-000006.html").read_text(encoding="utf-8")


def test_without_a_captioner_or_caption_a_line_is_reported(mscmt, caption_run, images, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "101.jpg"}])
    result = mscmt(["tag", src, "--model", caption_run, "--images", images, "--missing-images", "error", "--no-cache"])
    assert result.code == 0 and result.out == "" and "pass --captions FILE" in result.err


def test_the_tagger_api_captions_paths_bytes_and_unknown_ids(blip, caption_run, images, tmp_path):
    from mscmt_cli import Tagger

    tagger = Tagger.from_pretrained(caption_run, device="cpu", captioner=blip, max_new_tokens=TOKENS, cache_dir=tmp_path / "cache")
    by_path = tagger.tag("Obama in Paris", image=str(images / "102.jpg"))
    by_bytes = tagger.tag("Obama in Paris", image=(images / "102.jpg").read_bytes())
    given_caption = tagger.tag("Obama in Paris", caption=by_path.caption)
    assert by_path.caption and by_path.caption == by_bytes.caption
    assert by_path.gate == by_bytes.gate == given_caption.gate
    assert tagger.tag("Obama", image=None).caption == ""
    with pytest.raises(MscmtError, match="unreadable image"):
        tagger.tag("x", image=str(images / "099.jpg"))
    assert tagger.processor.captioner is not None and tagger.processor.captioner.generated == 1


def test_a_captioner_for_a_pixel_model_is_refused_before_it_loads(tiny, tmp_path):
    from mscmt_cli import Tagger
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble, save_model
    from mscmt_cli.registry import Registry

    paths = {"bertweet": str(tiny.bertweet), "clip-vit-l14": str(tiny.clip_vision)}
    assembled = assemble(
        Registry.from_entry_points(), Components(text="bertweet", image="clip-vit-l14", fusion="gated", decoder="crf"), list(LABELS), paths
    )
    save_model(tmp_path / "run" / "model", assembled.model, assembled.spec)
    with pytest.raises(MscmtError, match="reads pixels, not captions"):
        Tagger.from_pretrained(tmp_path / "run", {"clip-vit-l14": str(tiny.clip_vision)}, captioner="never/loaded")


def test_the_server_captions_uploaded_images(blip, caption_run, images):
    from fastapi.testclient import TestClient

    from mscmt_cli import Tagger
    from mscmt_cli.tagging.server import create_app

    tagger = Tagger.from_pretrained(caption_run, device="cpu", captioner=blip, max_new_tokens=TOKENS)
    data = (images / "103.jpg").read_bytes()
    with TestClient(create_app(tagger)) as client:
        answer = client.post("/tag", json={"text": "Obama in Paris", "image": base64.b64encode(data).decode()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["tags"] == tagger.tag("Obama in Paris", image=data).tags


def _pil(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def test_explain_shows_the_generated_caption(mscmt, blip, caption_run, images, tmp_path):
    out = tmp_path / "page.html"
    args = ["explain", "--model", caption_run, "--text", "Obama in Paris", "--image", images / "104.jpg", "--out", out]
    result = mscmt([*args, "--captioner", blip, "--max-new-tokens", TOKENS, "--cache-dir", tmp_path / "cache"])
    assert result.code == 0, result.err
    made = CaptionMaker(Captioner.load(blip, device="cpu", max_new_tokens=TOKENS)).captions([str(images / "104.jpg")])[0]
    assert isinstance(made, str) and made in out.read_text(encoding="utf-8")
