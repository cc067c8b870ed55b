"""One prediction path: ``Tagger.tag_batch``, ``mscmt tag`` and the service all go through ``Tagger.tag_outcomes``.

The same inputs give byte-identical answers and, for bad inputs, the same messages.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.tagger import NOT_FINITE
from tests.tagging_support import TRICKY_TEXTS, image_bytes
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import write_jsonl as _jsonl

ANSWER = ("tokens", "tags", "entities")


def _answer(row: dict) -> str:
    """The part of an answer every entry point gives (tokens, tags, entities), as JSON bytes."""
    return json.dumps({k: row[k] for k in ANSWER}, ensure_ascii=False)


def _service(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    return TestClient(create_app(tagger))


def test_tag_batch_mscmt_tag_and_the_service_agree_byte_for_byte_and_in_their_messages(mscmt, tagger, trained_run, tiny, corpus, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for k, colour in enumerate([(200, 30, 30), (10, 200, 10), (10, 10, 240)]):
        (images / f"good{k}.png").write_bytes(image_bytes(colour, (32 + 8 * k, 24)))
    (images / "bad.jpg").write_bytes(b"not an image")
    good = [
        {"text": TRICKY_TEXTS[0], "image": "good0.png"},
        {"tokens": ["New", "York", "Knicks"], "image": "good1.png"},
        {"text": TRICKY_TEXTS[2]},
        {"text": TRICKY_TEXTS[3], "image": "good2.png"},
        {"text": "Obama visits Paris", "image": "good0.png"},
    ]
    bad = {"text": "Obama in Paris", "image": "bad.jpg"}
    records = good[:2] + [bad] + good[2:]

    # mscmt tag: every line in one window
    src = _jsonl(tmp_path / "in.jsonl", records)
    cli = mscmt(["tag", src, "--model", trained_run, "--images", images, "--missing-images", "error", "--no-cache", *_clip_args(tiny)])
    assert cli.code == 0, cli.err
    cli_rows = [json.loads(line) for line in cli.out.splitlines()]
    cli_bad = [line for line in cli.err.splitlines() if line.startswith(f"{src}:")]

    # Tagger.tag_batch: the good tweets, their images as the paths mscmt tag resolved, then as bytes
    def value(r: dict):
        return r.get("text", r.get("tokens"))

    paths = [str(images / r["image"]) if "image" in r else None for r in good]
    by_path = tagger.tag_batch([value(r) for r in good], paths)
    by_bytes = tagger.tag_batch([value(r) for r in good], [None if p is None else Path(p).read_bytes() for p in paths])
    with pytest.raises(MscmtError) as from_path:
        tagger.tag_batch([value(bad)], [str(images / "bad.jpg")])
    with pytest.raises(MscmtError) as from_bytes:
        tagger.tag_batch([value(bad)], [b"not an image"])

    # the service: the good tweets in one request, the bad one alone
    def item(r: dict, image: bytes | None) -> dict:
        body = {k: r[k] for k in ("text", "tokens") if k in r}
        return {**body, "image": base64.b64encode(image).decode()} if image is not None else body

    with _service(tagger) as client:
        answer = client.post(
            "/tag/batch", json={"items": [item(r, (images / r["image"]).read_bytes() if "image" in r else None) for r in good]}
        )
        refused = client.post("/tag", json=item(bad, b"not an image"))
        refused_in_batch = client.post("/tag/batch", json={"items": [item(good[0], None), item(bad, b"not an image")]})
    assert answer.status_code == 200, answer.text
    served = answer.json()["results"]

    expected = [_answer(r.as_dict()) for r in by_path]
    assert [_answer(r.as_dict()) for r in by_bytes] == expected
    assert [_answer(r) for r in cli_rows] == expected
    assert [_answer(r) for r in served] == expected
    assert all(r.caption is None for r in by_path)

    unreadable = f"{images / 'bad.jpg'}: unreadable image (not an image format Pillow reads)"
    assert cli_bad == [f"{src}:3: {unreadable}"]
    assert str(from_path.value) == f"tweet 0: {unreadable}"
    as_bytes = "image: unreadable image (not an image format Pillow reads)"
    assert str(from_bytes.value) == f"tweet 0: {as_bytes}"
    assert refused.status_code == 422 and refused.json()["detail"] == as_bytes
    assert refused_in_batch.status_code == 422 and refused_in_batch.json()["detail"] == f"items[1]: {as_bytes}"


def test_a_caption_model_agrees_across_entry_points_also_on_missing_captions(mscmt, context_run, tiny, corpus, tmp_path):
    from mscmt_cli import Tagger
    from mscmt_cli.data.captions import read_captions

    captions = read_captions(corpus.captions)
    known = sorted(captions)[0]
    images = tmp_path / "images"
    images.mkdir()
    (images / f"{known}.jpg").write_bytes((corpus.images_dir / f"{known}.jpg").read_bytes())
    (images / "unknown.jpg").write_bytes(image_bytes())
    good = [
        {"text": "Jordan sings in Paris", "image": f"{known}.jpg"},
        {"text": "Jordan sings in Paris", "caption": "a singer on a stage"},
        {"text": "Obama"},
    ]
    bad = {"text": "Obama in Paris", "image": "unknown.jpg"}
    src = _jsonl(tmp_path / "in.jsonl", [good[0], bad, *good[1:]])
    common = ["--model", context_run, "--images", images, "--captions", corpus.captions, "--missing-images", "error", "--no-cache"]
    cli = mscmt(["tag", src, *common, *_clip_args(tiny)])
    assert cli.code == 0, cli.err
    cli_rows = [json.loads(line) for line in cli.out.splitlines()]

    tagger = Tagger.from_pretrained(
        context_run, {"clip-vit-l14": str(tiny.clip_vision)}, device="cpu", captions=corpus.captions, missing_images="error"
    )
    paths = [str(images / r["image"]) if "image" in r else None for r in good]  # as mscmt tag resolves them
    results = tagger.tag_batch([r["text"] for r in good], paths, captions=[r.get("caption") for r in good])
    with pytest.raises(MscmtError) as missing:  # the caption is read first: its error is the tweet's
        tagger.tag_batch([bad["text"]], [bad["image"]])
    with pytest.raises(MscmtError) as as_bytes:
        tagger.tag_batch([bad["text"]], [image_bytes()])
    with _service(tagger) as client:
        served = client.post("/tag/batch", json={"items": [{k: v for k, v in r.items() if k != "image"} for r in good[1:]]})
        refused = client.post("/tag", json={"text": bad["text"], "image": base64.b64encode(image_bytes()).decode()})

    expected = [_answer(r.as_dict()) for r in results]
    assert [_answer(r) for r in cli_rows] == expected
    assert served.status_code == 200 and [_answer(r) for r in served.json()["results"]] == expected[1:]
    assert [r.caption for r in results] == [captions[known], "a singer on a stage", ""]
    no_caption = f"no caption for image 'unknown.jpg' in {corpus.captions}"
    assert f"{src}:2: {no_caption}" in cli.err.splitlines()
    assert str(missing.value) == f"tweet 0: {no_caption}"
    assert refused.status_code == 422 and f"tweet 0: {refused.json()['detail']}" == str(as_bytes.value)


def test_a_model_scoring_nan_is_refused_alike_by_every_entry_point(tagger):
    """The old paths disagreed: ``tag_batch`` returned NaN scores where ``mscmt tag`` and the service refused the tweet."""
    from mscmt_cli.tagging.inputs import iter_jsonl
    from mscmt_cli.tagging.stream import tag_stream
    from tests.tagging_support import nan_weights

    bad: list = []
    with nan_weights(tagger):
        with pytest.raises(MscmtError) as raised:
            tagger.tag_batch(["fine", "Obama in Paris"])
        tag_stream(tagger, iter_jsonl([b'{"text": "fine"}\n']), on_result=lambda *_: None, on_bad=bad.append)
        with _service(tagger) as client:
            answer = client.post("/tag", json={"text": "fine"})
    assert str(raised.value) == f"tweet 0: {NOT_FINITE}"
    assert [b.message for b in bad] == [NOT_FINITE]
    assert answer.status_code == 500 and answer.json()["detail"] == NOT_FINITE
