"""The tiny test checkpoints of tests/tiny_models.py reload and have the promised shapes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.tiny_models import (
    BERT_MAX_POSITIONS,
    BERTWEET_MAX_POSITIONS,
    CLIP_PROJECTION_DIM,
    HIDDEN_SIZE,
    make_images,
    make_tiny_bert,
    make_tiny_bertweet,
    make_tiny_clip,
    make_tiny_clip_vision,
)

TWEET = "@USER Obama visits Paris HTTPURL"


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    # first import of the model classes is a one-off cost, not the builders'
    import transformers  # noqa: F401
    from transformers import BertModel, CLIPModel, RobertaModel  # noqa: F401


MAX_TINY_BYTES = 2 * 2**20  # "tiny": every test model's weights stay under 2 MiB, so building and loading take no time


def _weight_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def _images(tmp_path, n=3, size=48):
    ids = [f"img_{i}" for i in range(n)]
    make_images(tmp_path / "imgs", ids, size=size)
    return [Image.open(tmp_path / "imgs" / f"{i}.jpg").convert("RGB") for i in ids]


def test_bertweet_reload_and_tokenize(tmp_path):
    from transformers import AutoModel, AutoTokenizer, BertweetTokenizer, RobertaModel

    path = make_tiny_bertweet(tmp_path / "bertweet")
    assert 0 < _weight_bytes(path) < MAX_TINY_BYTES
    assert path == tmp_path / "bertweet"
    assert (path / "vocab.txt").exists() and (path / "bpe.codes").exists()
    # fairseq dict format / fastBPE codes format
    for line in (path / "vocab.txt").read_text(encoding="utf-8").splitlines():
        tok, cnt = line.rsplit(" ", 1)
        assert tok and cnt.isdigit()
    for line in (path / "bpe.codes").read_text(encoding="utf-8").splitlines():
        assert len(line.split()) == 3 and line.split()[2].isdigit()
    assert any(t.endswith("@@") for t in (path / "vocab.txt").read_text(encoding="utf-8").split())

    tok = AutoTokenizer.from_pretrained(path)
    assert isinstance(tok, BertweetTokenizer)
    pieces = tok.tokenize(TWEET)
    assert pieces == ["@USER", "Obama", "visits", "Paris", "HTTPURL"]
    ids = tok(TWEET)["input_ids"]
    assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2
    assert tok.pad_token_id == 1
    assert tok.unk_token_id not in ids

    # ordinary English tweet text: few unknowns, upper and lower case, digits, punctuation
    text = "so excited for the Xylophone concert in Kansas tonight !!! #music 2015 :) @someone"
    pieces = tok.tokenize(text)
    assert tok.unk_token not in pieces
    assert tok.convert_tokens_to_string(pieces) == text

    model = AutoModel.from_pretrained(path)
    assert isinstance(model, RobertaModel)
    assert model.config.vocab_size == len(tok)
    assert model.config.max_position_embeddings == BERTWEET_MAX_POSITIONS
    assert model.config.hidden_size == HIDDEN_SIZE
    # 128 sub-words fit
    enc = tok(["word " * 300], truncation=True, max_length=128, return_tensors="pt")
    assert enc["input_ids"].shape == (1, 128)
    with torch.no_grad():
        out = model(**enc)
    assert out.last_hidden_state.shape == (1, 128, HIDDEN_SIZE)


def test_bertweet_deterministic(tmp_path):
    a = make_tiny_bertweet(tmp_path / "a")
    b = make_tiny_bertweet(tmp_path / "b")
    assert (a / "vocab.txt").read_bytes() == (b / "vocab.txt").read_bytes()
    assert (a / "bpe.codes").read_bytes() == (b / "bpe.codes").read_bytes()
    from transformers import AutoModel

    wa = AutoModel.from_pretrained(a).embeddings.word_embeddings.weight
    wb = AutoModel.from_pretrained(b).embeddings.word_embeddings.weight
    assert torch.equal(wa, wb)


def test_bert_reload_and_tokenize(tmp_path):
    from transformers import AutoModel, AutoTokenizer, BertModel

    path = make_tiny_bert(tmp_path / "bert")
    assert 0 < _weight_bytes(path) < MAX_TINY_BYTES
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.is_fast
    pieces = tok.tokenize(TWEET)
    assert pieces == ["@", "user", "obama", "visits", "paris", "httpurl"]
    assert tok.tokenize("wonderful") == ["won", "##d", "##er", "##ful"]
    enc = tok(TWEET, return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == tok.cls_token_id
    assert tok.unk_token_id not in enc["input_ids"][0].tolist()
    model = AutoModel.from_pretrained(path)
    assert isinstance(model, BertModel)
    assert model.config.max_position_embeddings == BERT_MAX_POSITIONS
    assert model.config.vocab_size == len(tok)
    with torch.no_grad():
        out = model(**enc)
    assert out.last_hidden_state.shape == (1, enc["input_ids"].shape[1], HIDDEN_SIZE)


def test_clip_vision_reload(tmp_path):
    from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

    path = make_tiny_clip_vision(tmp_path / "clipv")
    assert 0 < _weight_bytes(path) < MAX_TINY_BYTES
    proc = AutoImageProcessor.from_pretrained(path)
    model = CLIPVisionModelWithProjection.from_pretrained(path)
    pixels = proc(images=_images(tmp_path, n=3), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (3, 3, 32, 32)
    with torch.no_grad():
        out = model(pixel_values=pixels)
    assert out.image_embeds.shape == (3, CLIP_PROJECTION_DIM)
    assert torch.isfinite(out.image_embeds).all()


def test_clip_full_reload(tmp_path):
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        CLIPModel,
        CLIPProcessor,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionModelWithProjection,
    )

    path = make_tiny_clip(tmp_path / "clip")
    assert 0 < _weight_bytes(path) < MAX_TINY_BYTES
    assert (path / "vocab.json").exists() and (path / "merges.txt").exists()

    tok = AutoTokenizer.from_pretrained(path)
    assert isinstance(tok, CLIPTokenizer)
    pieces = tok.tokenize(TWEET)
    assert "obama</w>" in pieces and "paris</w>" in pieces and "visits</w>" in pieces
    ids = tok(TWEET)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert ids[1:-1].count(tok.unk_token_id) == 0

    processor = CLIPProcessor.from_pretrained(path)
    images = _images(tmp_path, n=2)
    batch = processor(text=["a photo of a man", TWEET], images=images, return_tensors="pt", padding=True)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert AutoImageProcessor.from_pretrained(path).crop_size == {"height": 32, "width": 32}

    clip = CLIPModel.from_pretrained(path)
    assert clip.config.projection_dim == CLIP_PROJECTION_DIM
    assert clip.config.text_config.max_position_embeddings == 77
    with torch.no_grad():
        out = clip(**batch)
    assert out.logits_per_image.shape == (2, 2)
    assert out.text_embeds.shape == (2, CLIP_PROJECTION_DIM)
    assert out.image_embeds.shape == (2, CLIP_PROJECTION_DIM)

    text_model = CLIPTextModel.from_pretrained(path)
    with torch.no_grad():
        t = text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert t.last_hidden_state.shape[-1] == HIDDEN_SIZE
    assert t.pooler_output.shape == (2, HIDDEN_SIZE)

    vision = CLIPVisionModelWithProjection.from_pretrained(path)
    with torch.no_grad():
        v = vision(pixel_values=batch["pixel_values"]).image_embeds
        ref = clip.visual_projection(clip.vision_model(pixel_values=batch["pixel_values"]).pooler_output)
    assert v.shape == (2, CLIP_PROJECTION_DIM)
    # the stand-alone vision tower carries the same (not re-initialised) weights
    assert torch.allclose(v, ref, atol=1e-6)


def test_make_images(tmp_path):
    ids = ["a", "b", "ex_0001"]
    make_images(tmp_path, ids, size=40)
    imgs = [Image.open(tmp_path / f"{i}.jpg") for i in ids]
    for im in imgs:
        assert im.mode == "RGB" and im.size == (40, 40)
    assert imgs[0].tobytes() != imgs[1].tobytes()
    again = tmp_path / "again"
    make_images(again, ids, size=40)
    assert (again / "a.jpg").read_bytes() == (tmp_path / "a.jpg").read_bytes()
