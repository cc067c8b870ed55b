"""The gate page: ``mscmt explain`` and ``mscmt tag --explain``."""

from __future__ import annotations

import base64
import html
import io
import json
import re

from PIL import Image

from mscmt_cli.labels import ENTITY_TYPES
from tests.tagging_support import TRICKY_TEXTS, forced_tag
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import write_lines as _write_lines


def _check_image(page: str) -> Image.Image:
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1
    img = Image.open(io.BytesIO(base64.b64decode(uris[0])))
    img.verify()
    return Image.open(io.BytesIO(base64.b64decode(uris[0])))


def _gate_values(page: str) -> list[tuple[str, float]]:
    cells = re.findall(r'<span class="tok">(.*?)</span><span class="val">([0-9.]+)</span>', page)
    return [(html.unescape(tok), float(val)) for tok, val in cells]


def test_explain_page_shows_every_token_the_image_and_the_gate(mscmt, trained_run, tiny, corpus, tmp_path):
    image = sorted(corpus.images_dir.glob("*.jpg"))[0]
    out = tmp_path / "page.html"
    text = TRICKY_TEXTS[0] + " <b>&amp;"
    result = mscmt(
        [
            "explain",
            "--model",
            trained_run,
            "--text",
            text,
            "--image",
            image,
            "--out",
            out,
            "--model-path",
            f"clip-vit-l14={tiny.clip_vision}",
        ]
    )
    assert result.code == 0, result.err
    page = out.read_text(encoding="utf-8")
    assert "<b>&amp;" not in page and "&lt;b&gt;&amp;amp;" in page, "tweet text must be escaped"
    assert _check_image(page).size == Image.open(image).size
    cells = _gate_values(page)
    from mscmt_cli.data.doc import make_doc

    assert [tok for tok, _ in cells] == list(make_doc(text=text).tokens)
    assert all(0.0 <= g <= 1.0 for _, g in cells)
    assert all(etype in page for etype in ENTITY_TYPES) and "no gate" not in page
    assert not re.search(r'(src|href)="(?!data:)|<script|@import|url\(', page), "the page must be self-contained"


def test_entities_are_highlighted_in_their_colour(tagger):
    from mscmt_cli.labels import types_of
    from mscmt_cli.tagging.explain import render_page, type_colours

    with forced_tag(tagger, "B-ORG"):
        result = tagger.tag("Apple and Google")
    page = render_page(result, None, tagger.info())
    marks = re.findall(r'<mark class="ent ent-ORG" style="background:(#[0-9a-f]+)"[^>]*>(.*?)<span', page)
    assert marks == [(type_colours(types_of(tagger.labels))["ORG"], w) for w in ("Apple", "and", "Google")]
    assert "No image was given" in page


def test_a_model_without_gate_says_so(tiny):
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble
    from mscmt_cli.registry import Registry
    from mscmt_cli.tagging.explain import render_page
    from mscmt_cli.tagging.tagger import Tagger

    assembled = assemble(
        Registry.from_entry_points(),
        Components(text="bertweet", image="clip-vit-l14", fusion="additive", decoder="softmax"),
        list(LABELS),
        {"bertweet": str(tiny.bertweet), "clip-vit-l14": str(tiny.clip_vision)},
    )
    tagger = Tagger(assembled, "cpu")
    result = tagger.tag("Obama visits Paris")
    assert result.gate is None and not tagger.has_gate
    rows = _softmax_rows(
        tagger, result
    )  # the score of a decoded tag is its softmax probability (decoding is constrained, so not always the row's max)
    assert all(abs(p - row[tagger.labels.index(tag)]) < 1e-6 for p, row, tag in zip(result.tag_probs, rows, result.tags))
    page = render_page(result, Image.new("RGB", (8, 8)), tagger.info())
    assert "has no gate" in page and "additive" in page and not _gate_values(page)


def _softmax_rows(tagger, result):
    """Per-token softmax probabilities recomputed from the model (the softmax decoder's marginals)."""
    import torch

    from mscmt_cli.backends.batches import Example, collate

    batch = collate([Example(tagger.encode(result.doc), [], tagger.images.features([None])[0][0])], tagger.model.text.pad_id)
    with torch.no_grad():
        probs = torch.softmax(tagger.model(batch).emissions[0].float(), dim=-1)
    return probs.tolist()


def test_tag_explain_writes_one_page_per_tagged_line(mscmt, trained_run, tiny, corpus, tmp_path):
    image = sorted(corpus.images_dir.glob("*.jpg"))[0].name
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([json.dumps({"text": "one two", "image": image}), "bad", json.dumps({"tokens": ["three"]})]) + "\n")
    pages = tmp_path / "pages"
    result = mscmt(
        [
            "tag",
            src,
            "--model",
            trained_run,
            "--images",
            corpus.images_dir,
            "--explain",
            pages,
            "--out",
            tmp_path / "o.jsonl",
            "--model-path",
            f"clip-vit-l14={tiny.clip_vision}",
        ]
    )
    assert result.code == 0, result.err
    assert sorted(p.name for p in pages.iterdir()) == ["line-000001.html", "line-000003.html"]
    first = (pages / "line-000001.html").read_text(encoding="utf-8")
    _check_image(first)
    assert [t for t, _ in _gate_values(first)] == ["one", "two"]
    assert "Given as tokens" in (pages / "line-000003.html").read_text(encoding="utf-8")


def test_explain_checks_the_out_directory_before_loading_the_model(mscmt, tmp_path):
    out = tmp_path / "missing" / "page.html"
    result = mscmt(["explain", "--model", tmp_path / "no-such-run", "--text", "Obama", "--out", out])
    assert result.code == 2
    assert result.err.strip() == f"error: --out {out}: directory {out.parent} does not exist"


def test_every_type_gets_its_own_colour_and_a_legend_entry(tagger):
    from mscmt_cli.labels import label_set
    from mscmt_cli.tagging.explain import render_page, type_colours

    colours = type_colours([f"type-{k}" for k in range(40)])
    assert len(set(colours.values())) == 40 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours.values())
    assert type_colours(ENTITY_TYPES) == {"PER": "#f4a6a6", "LOC": "#9fc8f0", "ORG": "#a8e0a0", "OTHER": "#f5d77a"}
    six = ("corporation", "creative-work", "group", "location", "person", "product")
    page = render_page(tagger.tag("Apple and Google"), None, {**tagger.info(), "labels": list(label_set(six))})
    legend = re.search(r'<div class="legend">(.*?)</div>', page)
    assert legend is not None
    assert re.findall(r'<span style="background:(#[0-9a-f]+)">([^<]*)</span>', legend.group(1))[:6] == [
        (type_colours(six)[t], t) for t in six
    ]


# --- tag --explain follows the missing-image policy and never stops the run -------------------------------------------


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
