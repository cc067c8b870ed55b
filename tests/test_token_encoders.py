"""The token image encoders against hand-computed oracles: CLIP patches, a timm grid, caption sub-words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.build import build_image_encoder
from mscmt_cli.model.components import feature_identity
from mscmt_cli.registry import Registry

REGISTRY = Registry.from_entry_points()
CAPTIONS = ["a man on a stage", "", "two dogs playing with a red ball in the park near the river"]


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (40 + 8 * i, 30), (30 * i, 200 - 40 * i, 90)) for i in range(n)]


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    from tests.tiny_vlm import make_timm_weights

    return make_timm_weights(tmp_path_factory.mktemp("timm") / "test_resnet.safetensors")


def test_clip_patches_are_the_post_layernorm_tokens(tiny):
    from transformers import AutoImageProcessor, CLIPVisionModel

    encoder = build_image_encoder(REGISTRY, "clip-vit-l14-patches", {"clip-vit-l14-patches": str(tiny.clip_vision)})
    assert encoder.grid == (4, 4) and encoder.grid_offset == 1 and encoder.max_tokens == 17 and encoder.dim == 32  # 32 px / 8 px patches
    out = encoder.encode(_images(3))
    assert out.features.shape == (3, 17, 32) and out.mask.all()
    model = CLIPVisionModel.from_pretrained(tiny.clip_vision).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny.clip_vision)(images=_images(3), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = model(pixel_values=pixels)
        want = F.layer_norm(
            ref.last_hidden_state, (32,), model.post_layernorm.weight, model.post_layernorm.bias, model.config.layer_norm_eps
        )
    assert torch.allclose(out.features, want, atol=1e-5)
    assert torch.allclose(out.features[:, 0], ref.pooler_output, atol=1e-5), "token 0 is CLIP's pooled [CLS]"
    pooled = build_image_encoder(REGISTRY, "clip-vit-l14", {"clip-vit-l14": str(tiny.clip_vision)})
    assert feature_identity(encoder) != feature_identity(pooled) and feature_identity(pooled) == pooled.identity()
    assert feature_identity(encoder).endswith("|tokens<=17x32|float16")


def test_timm_grid_pools_the_last_feature_map(timm_file):
    import timm
    from safetensors.torch import load_file

    encoder = build_image_encoder(REGISTRY, "timm-grid:test_resnet", {"timm-grid:test_resnet": str(timm_file)})
    assert encoder.max_tokens == 49 and encoder.grid == (7, 7) and encoder.grid_offset == 0
    out = encoder.encode(_images(2))
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    model.load_state_dict({k: v for k, v in load_file(str(timm_file)).items() if not k.startswith("fc.")})
    with torch.no_grad():
        fmap = model.eval().forward_features(torch.stack([encoder.transform(i) for i in _images(2)]))  # (n, C, h, w)
    c, h, w = fmap.shape[1:]
    assert encoder.dim == c and out.features.shape == (2, 49, c) and out.mask.all()
    for r in range(7):  # the cell (r, k) is the mean over its adaptive-pooling window, by hand
        for k in range(7):
            rows = slice(r * h // 7, -(-(r + 1) * h // 7))
            cols = slice(k * w // 7, -(-(k + 1) * w // 7))
            assert torch.allclose(out.features[:, r * 7 + k], fmap[:, :, rows, cols].mean(dim=(2, 3)), atol=1e-5)
    assert encoder.identity().startswith("timm-grid:test_resnet|") and encoder.identity().endswith("|grid7x7")


def test_timm_grid_side_is_a_parameter_and_pooled_timm_keeps_its_identity(timm_file):
    grid = build_image_encoder(REGISTRY, "timm-grid:test_resnet", {"timm-grid:test_resnet": str(timm_file)}, params={"grid": 2})
    assert grid.encode(_images(1)).features.shape == (1, 4, grid.dim) and grid.identity().endswith("|grid2x2")
    pooled = build_image_encoder(REGISTRY, "timm:test_resnet", {"timm:test_resnet": str(timm_file)})
    assert pooled.identity().startswith("timm:test_resnet|") and pooled.identity().count("|") == 2, "the pooled identity is unchanged"


def test_timm_grid_refuses_a_model_without_a_feature_map(tmp_path):
    from tests.tiny_vlm import make_timm_weights

    weights = make_timm_weights(tmp_path / "vit.safetensors", "test_vit")
    encoder = build_image_encoder(REGISTRY, "timm-grid:test_vit", {"timm-grid:test_vit": str(weights)})
    with pytest.raises(MscmtError, match="not a feature map .* timm-grid needs a convolutional model"):
        encoder.encode(_images(1))
    with pytest.raises(MscmtError, match="needs a variant, e.g. timm-grid:<model>"):
        REGISTRY.resolve("image", "timm-grid")


def test_caption_tokens_are_the_sub_word_states(tiny):
    from transformers import AutoModel, AutoTokenizer

    encoder = build_image_encoder(REGISTRY, "caption-tokens:bert-base", {"caption-tokens:bert-base": str(tiny.bert)})
    assert encoder.max_tokens == 64 and encoder.dim == 32 and encoder.token_dtype == torch.float16
    encoder.batch_size = 2  # two tokenizer batches, padded to different lengths
    out = encoder.encode(CAPTIONS)
    tokenizer, model = AutoTokenizer.from_pretrained(tiny.bert), AutoModel.from_pretrained(tiny.bert).eval()
    for i, caption in enumerate(CAPTIONS):  # the oracle: each caption alone, unpadded
        ids = tokenizer(caption, return_tensors="pt")
        with torch.no_grad():
            want = model(**ids).last_hidden_state[0]
        n = want.shape[0]
        assert int(out.mask[i].sum()) == n and not out.mask[i, n:].any()
        assert torch.allclose(out.features[i, :n], want, atol=1e-5) and not out.features[i, n:].any()
        assert encoder.token_texts(caption) == tokenizer.convert_ids_to_tokens(ids["input_ids"][0])
    assert encoder.token_texts("") == ["[CLS]", "[SEP]"], "a tweet without a caption still has tokens"


def test_caption_tokens_are_capped_and_named_apart_from_caption(tiny):
    encoder = build_image_encoder(REGISTRY, "caption-tokens:bert-base", {"caption-tokens:bert-base": str(tiny.bert)})
    long = " ".join(["river"] * 200)
    assert encoder.encode([long]).features.shape == (1, encoder.max_tokens, 32) and len(encoder.token_texts(long)) == encoder.max_tokens
    pooled = build_image_encoder(REGISTRY, "caption:bert-base", {"caption:bert-base": str(tiny.bert)})
    assert encoder.identity().startswith("caption-tokens|bert-base|") and "mean-l2" not in encoder.identity()
    assert pooled.identity().startswith("caption|bert-base|") and feature_identity(pooled) == pooled.identity()
    with pytest.raises(MscmtError, match="caption-tokens:bert-base encodes caption strings"):
        encoder.encode([torch.zeros(3)])


def test_blip2_query_tokens_are_the_image_embeds_that_blip2_averages(tmp_path):
    from transformers import AutoImageProcessor, Blip2VisionModelWithProjection

    from tests.tiny_vlm import BLIP2_PROJECTION, BLIP2_QUERY_TOKENS, make_tiny_blip2

    path = make_tiny_blip2(tmp_path / "blip2")
    encoder = build_image_encoder(REGISTRY, "blip2-query-tokens", {"blip2-query-tokens": str(path)})
    assert encoder.max_tokens == BLIP2_QUERY_TOKENS and encoder.dim == BLIP2_PROJECTION and encoder.grid is None
    out = encoder.encode(_images(3))
    assert out.features.shape == (3, BLIP2_QUERY_TOKENS, BLIP2_PROJECTION) and out.mask.all()
    model = Blip2VisionModelWithProjection.from_pretrained(path).eval()
    pixels = AutoImageProcessor.from_pretrained(path)(images=_images(3), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        want = model(pixel_values=pixels).image_embeds
    assert torch.allclose(out.features, want, atol=1e-5)
    assert torch.allclose(out.features.norm(dim=-1), torch.ones(3, BLIP2_QUERY_TOKENS), atol=1e-5), "L2-normalised per token"
    pooled = build_image_encoder(REGISTRY, "blip2", {"blip2": str(path)})
    assert torch.allclose(pooled.encode(_images(3)).features[:, 0], want.mean(dim=1), atol=1e-5), "blip2 is their mean"
    assert feature_identity(encoder) != feature_identity(pooled)
    assert feature_identity(encoder).endswith(f"|image_embeds|tokens<={BLIP2_QUERY_TOKENS}x{BLIP2_PROJECTION}|float16")


def test_mscmt_plugins_lists_the_token_encoders_and_cross_attention(mscmt):
    result = mscmt(["plugins"])
    assert result.code == 0, result.err
    for name in ("cross-attention", "clip-vit-l14-patches", "timm-grid", "caption-tokens", "blip2-query-tokens"):
        assert name in result.out
    shown = mscmt(["plugins", "fusion.cross-attention"])
    assert shown.code == 0 and all(key in shown.out for key in ("heads", "layers", "dropout", "gate"))
