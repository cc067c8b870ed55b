"""What cross-attention looked at: the Tagger's per-word attention and the explain page's views of it."""

from __future__ import annotations

import base64
import html
import io
import re

import pytest
from PIL import Image

from mscmt_cli.labels import LABELS
from mscmt_cli.model.build import Components, assemble, save_model
from mscmt_cli.registry import Registry
from mscmt_cli.tagging.attention import HEAT_RGB, attention_section, heat_map
from mscmt_cli.tagging.tagger import Tagger
from tests.conftest import import_or_skip


def _saved(tmp_path, image: str, paths: dict, fusion: str = "cross-attention"):
    """An untrained bertweet + ``image`` + ``fusion`` + crf model saved as a run directory."""
    assembled = assemble(
        Registry.from_entry_points(), Components(text="bertweet", image=image, fusion=fusion, decoder="crf"), list(LABELS), paths
    )
    save_model(tmp_path / "run" / "model", assembled.model, assembled.spec)
    return tmp_path / "run"


def _pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(u))) for u in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _shaded_rows(page: str) -> list[tuple[str, list[tuple[str, float]]]]:
    rows = re.findall(r'<div class="attn"><span class="aw">(.*?)</span>(.*?)</div>', page)
    cell = re.compile(r'<span class="at" [^>]*title="([0-9.]+)">(.*?)</span>')
    return [(html.unescape(w), [(html.unescape(t), float(v)) for v, t in cell.findall(cells)]) for w, cells in rows]


def test_heat_map_reddens_the_cells_by_weight():
    base = Image.new("RGB", (40, 40), (0, 255, 0))
    out = heat_map(base, [0.0, 1.0, 0.5, 0.0], (2, 2))  # row by row: top-right strongest, bottom-left half
    top_left, top_right, bottom_left = out.getpixel((5, 5)), out.getpixel((35, 5)), out.getpixel((5, 35))
    assert top_left == (0, 255, 0), "a cell without weight keeps the image"
    assert top_right[0] > bottom_left[0] > 0 and top_right[1] < bottom_left[1] < 255
    assert abs(top_right[0] - round(HEAT_RGB[0] * 200 / 255)) <= 1


def test_the_view_follows_the_image_tokens():
    rows = [[0.25, 0.75], [0.5, 0.5]]
    texts = _shaded_rows(attention_section(["a", "b"], rows, {}, None, ["[CLS]", "bus"]))
    assert texts == [("a", [("[CLS]", 0.25), ("bus", 0.75)]), ("b", [("[CLS]", 0.5), ("bus", 0.5)])]
    numbered = _shaded_rows(attention_section(["a", "b"], rows, {}, None, None))
    assert [t for t, _ in numbered[0][1]] == ["#0", "#1"]
    grid = attention_section(["a"], [[0.1, 0.3, 0.2, 0.2, 0.2]], {"grid": [2, 2], "grid_offset": 1}, Image.new("RGB", (60, 30)), None)
    assert len(_pngs(grid)) == 1 and "[CLS] 0.10" in grid and "largest weight 0.3000 at row 1, column 1" in grid
    assert "one token" in attention_section(["a"], [[1.0]], {}, None, None)


@pytest.fixture(scope="module")
def patches_run(tiny, tmp_path_factory):
    paths = {"bertweet": str(tiny.bertweet), "clip-vit-l14-patches": str(tiny.clip_vision)}
    return _saved(tmp_path_factory.mktemp("patches"), "clip-vit-l14-patches", paths), paths


def test_tagger_gives_each_word_its_attention_over_the_patches(patches_run, corpus):
    run, paths = patches_run
    tagger = Tagger.from_pretrained(run, paths, device="cpu")
    assert tagger.has_attention and not tagger.has_gate
    assert tagger.info()["image_tokens"] == {"max": 17, "grid": [4, 4], "grid_offset": 1}
    result = tagger.tag("Obama visits Paris", image=sorted(corpus.images_dir.glob("*.jpg"))[0])
    assert result.attention is not None and len(result.attention) == 3 and all(len(row) == 17 for row in result.attention)
    assert all(abs(sum(row) - 1) < 1e-3 and min(row) >= 0 for row in result.attention)


def test_explain_draws_a_heat_map_per_word_over_the_image(mscmt, patches_run, corpus, tmp_path):
    run, paths = patches_run
    image, out = sorted(corpus.images_dir.glob("*.jpg"))[0], tmp_path / "page.html"
    args = ["--model-path", f"clip-vit-l14-patches={paths['clip-vit-l14-patches']}"]
    result = mscmt(["explain", "--model", run, "--text", "Obama visits Paris", "--image", image, "--out", out, *args])
    assert result.code == 0, result.err
    page = out.read_text(encoding="utf-8")
    assert "Attention over the image tokens" in page and "attends over the image tokens instead" in page
    figures = re.findall(r'<figure class="heat"><img alt="attention of (.*?)"', page)
    assert figures == ["Obama", "visits", "Paris"]
    shown, *heats = _pngs(page)
    assert shown.size == Image.open(image).size and len(heats) == 3 and all(h.size == (112, 112) for h in heats)
    assert page.count("[CLS] ") == 3
    assert not re.search(r'(src|href)="(?!data:)|<script|@import|url\(', page), "the page must be self-contained"


def test_explain_shows_the_caption_sub_words_each_word_attended_to(mscmt, tiny, corpus, tmp_path):
    paths = {"bertweet": str(tiny.bertweet), "caption-tokens:bert-base": str(tiny.bert)}
    run = _saved(tmp_path, "caption-tokens:bert-base", paths)
    out = tmp_path / "page.html"
    image_id = corpus.captions.read_text(encoding="utf-8").split(" :", 1)[0]
    args = ["--captions", corpus.captions, "--model-path", f"caption-tokens:bert-base={tiny.bert}", "--no-cache"]
    result = mscmt(["explain", "--model", run, "--text", "Jordan sings tonight", "--image", image_id, "--out", out, *args])
    assert result.code == 0, result.err
    tagger = Tagger.from_pretrained(run, paths, device="cpu", captions=corpus.captions)
    caption = tagger.processor.captions.read(image_id)
    sub_words = tagger.images.encoder.token_texts(caption)
    rows = _shaded_rows(out.read_text(encoding="utf-8"))
    assert [w for w, _ in rows] == ["Jordan", "sings", "tonight"]
    assert all([t for t, _ in cells] == sub_words for _, cells in rows), "each word's row is the caption, sub-word by sub-word"
    assert all(abs(sum(v for _, v in cells) - 1) < 1e-2 for _, cells in rows)
    expected = tagger.tag("Jordan sings tonight", caption=caption).attention
    assert expected is not None
    shown = [value for _, cells in rows for _, value in cells]
    assert shown == pytest.approx([value for row in expected for value in row], abs=1e-4)


def test_a_pooled_model_with_cross_attention_says_each_word_takes_the_one_token(tiny, tmp_path):
    from mscmt_cli.tagging.explain import render_page

    paths = {"bertweet": str(tiny.bertweet), "clip-vit-l14": str(tiny.clip_vision)}
    tagger = Tagger.from_pretrained(_saved(tmp_path, "clip-vit-l14", paths), paths, device="cpu")
    result = tagger.tag("Obama in Paris", image=Image.new("RGB", (20, 20), (10, 20, 30)))
    assert result.attention == [[1.0], [1.0], [1.0]]
    assert "every word puts all its attention on it" in render_page(result, None, tagger.info())


def test_the_onnx_backend_gives_the_torch_tags_and_attention_of_a_cross_attention_model(patches_run, corpus):
    import_or_skip("onnxruntime")
    run, paths = patches_run
    images = sorted(corpus.images_dir.glob("*.jpg"))[:3]
    texts = ["Obama visits Paris", "RT @user : New York today", "a"]
    torch_tagger = Tagger.from_pretrained(run, paths, device="cpu")
    onnx_tagger = Tagger.from_pretrained(run, paths, backend="onnx")
    assert onnx_tagger.has_attention
    want = torch_tagger.tag_batch(texts, images=images)
    got = onnx_tagger.tag_batch(texts, images=images)
    for g, w in zip(got, want):
        assert g.tags == w.tags
        assert g.attention is not None and w.attention is not None
        assert [len(r) for r in g.attention] == [len(r) for r in w.attention] == [17] * len(w.tags)
        assert [x for r in g.attention for x in r] == pytest.approx([x for r in w.attention for x in r], abs=1e-3)
