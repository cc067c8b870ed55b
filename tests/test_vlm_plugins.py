"""The VLM baselines (clip-text, blip2 text/image, timm:<model>) on tiny random checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mscmt_cli.backends.batches import collate, encode_examples
from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.build import build_image_encoder
from mscmt_cli.registry import Registry
from tests.cli_support import train_args
from tests.tiny_models import HIDDEN_SIZE
from tests.tiny_vlm import BLIP2_PROJECTION, make_timm_weights, make_tiny_blip2

TWEETS = [["Obama", "visits", "Paris", "today"], ["RT", "@USER", ":", "Nike", "wins"]]


@pytest.fixture(scope="module")
def blip2(tmp_path_factory) -> Path:
    return make_tiny_blip2(tmp_path_factory.mktemp("blip2") / "blip2")


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory) -> Path:
    return make_timm_weights(tmp_path_factory.mktemp("timm") / "test_resnet.safetensors", "test_resnet")


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (40 + 7 * i, 30 + 5 * i), (20 * i, 100, 200 - 20 * i)) for i in range(n)]


def _word_vectors(encoder, tweets: list[list[str]]) -> torch.Tensor:
    examples = encode_examples(encoder, tweets, None, torch.zeros(len(tweets), 0))
    with torch.no_grad():
        return encoder(collate(examples, encoder.pad_id).text)


def _check_windows(encoder, words: list[str], prefix: int, suffix: int) -> None:
    encoded = encoder.encode_words(words)
    assert len(encoded.word_positions) == len(words)
    for window in encoded.windows:
        assert len(window) <= encoder.max_subwords
        assert window[0] == prefix and window[-1] == suffix
    for word, (k, p) in zip(words, encoded.word_positions):
        assert encoded.windows[k][p] == encoder.word_ids(word)[0]


def test_plugins_lists_the_baselines(mscmt):
    result = mscmt(["plugins"])
    assert result.code == 0, result.err
    for name in ("clip-text", "blip2", "timm:<model>"):
        assert name in result.out
    registry = Registry.from_entry_points()
    assert "clip-text" in registry.names("text") and "blip2" in registry.names("text")
    assert {"blip2", "timm:<model>"} <= set(registry.display_names("image"))


def test_clip_text_windows_of_77_with_bos_eos(tiny):
    from plugins.vlm import ClipTextEncoder

    encoder = ClipTextEncoder(str(tiny.clip))
    tok = encoder.tokenizer
    assert encoder.max_subwords == 77
    assert tok.cls_token_id is None and tok.sep_token_id is None
    long_tweet = ["paris", "obama", "visits", "london"] * 30  # far more than 77 sub-words
    _check_windows(encoder, long_tweet, tok.bos_token_id, tok.eos_token_id)
    assert len(encoder.encode_words(long_tweet).windows) >= 2
    vectors = _word_vectors(encoder, TWEETS + [long_tweet])
    assert vectors.shape == (3, len(long_tweet), HIDDEN_SIZE)
    assert torch.isfinite(vectors).all()


def test_clip_text_reloads_from_saved_architecture(tiny, tmp_path):
    from plugins.vlm import ClipTextEncoder

    encoder = ClipTextEncoder(str(tiny.clip))
    encoder.save_architecture(tmp_path / "text")
    again = ClipTextEncoder(str(tmp_path / "text"), pretrained=False)
    again.load_state_dict(encoder.state_dict())
    assert again.max_subwords == 77
    assert torch.allclose(_word_vectors(again.eval(), TWEETS), _word_vectors(encoder.eval(), TWEETS))


def test_blip2_text_per_token_hidden_states(blip2, tmp_path):
    from plugins.vlm import Blip2TextEncoder

    encoder = Blip2TextEncoder(str(blip2))
    tok = encoder.tokenizer
    _check_windows(encoder, TWEETS[0], tok.cls_token_id, tok.sep_token_id)
    vectors = _word_vectors(encoder.eval(), TWEETS)
    assert encoder.hidden_size == HIDDEN_SIZE
    assert vectors.shape == (2, 5, HIDDEN_SIZE)
    encoder.save_architecture(tmp_path / "text")
    assert json.loads((tmp_path / "text" / "config.json").read_text())["model_type"] == "blip-2"
    again = Blip2TextEncoder(str(tmp_path / "text"), pretrained=False)
    again.load_state_dict(encoder.state_dict())
    assert torch.allclose(_word_vectors(again.eval(), TWEETS), vectors)


def test_blip2_image_mean_over_query_tokens(blip2):
    from transformers import AutoImageProcessor, Blip2VisionModelWithProjection

    encoder = build_image_encoder(Registry.from_entry_points(), "blip2", {"blip2": str(blip2)})
    features = encoder.encode(_images(3)).features[:, 0]
    assert encoder.dim == BLIP2_PROJECTION and features.shape == (3, BLIP2_PROJECTION)
    model = Blip2VisionModelWithProjection.from_pretrained(blip2).eval()
    pixels = AutoImageProcessor.from_pretrained(blip2)(images=_images(3), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        embeds = model(pixel_values=pixels).image_embeds  # (n, Q, P)
    assert embeds.dim() == 3
    assert torch.allclose(features, embeds.mean(dim=1), atol=1e-6)
    assert encoder.identity().startswith("blip2|")


def test_timm_family_loads_a_weights_file(timm_file):
    import timm

    registry = Registry.from_entry_points()
    cls, variant = registry.resolve("image", "timm:test_resnet")
    assert cls.family and variant == "test_resnet"
    encoder = build_image_encoder(registry, "timm:test_resnet", {"timm:test_resnet": str(timm_file)})
    features = encoder.encode(_images(2)).features[:, 0]
    assert features.shape == (2, encoder.dim)
    # the oracle: the same weights loaded by hand, pooled features of the same transform
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    model.load_state_dict({k: v for k, v in load_file(str(timm_file)).items() if not k.startswith("fc.")})
    with torch.no_grad():
        expected = model.eval()(torch.stack([encoder.transform(i) for i in _images(2)]))
    assert torch.allclose(features, expected, atol=1e-5)
    identity = encoder.identity()
    assert identity.startswith("timm:test_resnet|") and identity == encoder.identity()
    assert identity.split("|")[2] != "", "identity must include the transform config"


def test_timm_loads_a_directory_or_a_hub_snapshot(timm_file, tmp_path):
    import timm
    from timm.models._hub import save_for_hf

    from plugins.vlm import TimmImageEncoder

    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(timm_file, plain / "model.safetensors")
    snapshot = tmp_path / "snapshot"  # config.json + model.safetensors, as on the timm hub
    model = timm.create_model("test_resnet", pretrained=False)
    model.load_state_dict(load_file(str(timm_file)))
    save_for_hf(model, str(snapshot), safe_serialization=True)
    reference = TimmImageEncoder(str(timm_file), "test_resnet").encode(_images(2)).features
    for source in (plain, snapshot):
        encoder = TimmImageEncoder(str(source), "test_resnet")
        assert torch.allclose(encoder.encode(_images(2)).features, reference, atol=1e-5), source
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no weights file"):
        TimmImageEncoder(str(tmp_path / "empty"), "test_resnet")


def test_timm_identity_follows_weights_and_transform(timm_file, tmp_path):
    from plugins.vlm import TimmImageEncoder

    other = tmp_path / "other.safetensors"  # same architecture, other weights
    save_file({k: v + 1 for k, v in load_file(str(timm_file)).items()}, str(other))
    a, b = TimmImageEncoder(str(timm_file), "test_resnet"), TimmImageEncoder(str(other), "test_resnet")
    assert a.identity().split("|")[1] != b.identity().split("|")[1]
    b.data_config = {**b.data_config, "crop_pct": 0.5}
    b._identity = None
    assert a.identity().split("|")[2] != b.identity().split("|")[2]


def test_timm_without_weights_or_hub_is_one_line_error():
    from plugins.vlm import TimmImageEncoder

    with pytest.raises(ModelLoadError) as err:
        TimmImageEncoder("test_resnet", "test_resnet")
    message = str(err.value)
    assert "\n" not in message and "--model-path timm:test_resnet=" in message
    with pytest.raises(MscmtError, match="no model"):
        TimmImageEncoder("nosuchmodel", "nosuchmodel")


def test_timm_without_variant_is_refused():
    with pytest.raises(MscmtError, match="needs a variant"):
        Registry.from_entry_points().resolve("image", "timm")


def test_train_clip_text_with_timm_image(corpus, tiny, timm_file, mscmt, tmp_path):
    out = tmp_path / "vlm"
    timm = ["--model-path", f"timm:test_resnet={timm_file}"]
    components = {"text": "clip-text", "image": "timm:test_resnet", "fusion": "gated", "decoder": "crf"}
    result = mscmt(train_args(corpus, out, tiny, **components, batch_size=16, extra=timm))
    assert result.code == 0, result.err
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["components"]["image"] == "timm:test_resnet" and config["components"]["text"] == "clip-text"
    scores = mscmt(
        [
            "evaluate",
            out,
            *corpus.args(),
            "--json",
            tmp_path / "s.json",
            *tiny.model_path_args(),
            "--model-path",
            f"timm:test_resnet={timm_file}",
        ]
    )
    assert scores.code == 0, scores.err
    assert json.loads((tmp_path / "s.json").read_text())["micro"] == json.loads((out / "test_scores.json").read_text())["micro"]


def test_train_blip2_text_and_image(corpus, blip2, mscmt, tmp_path):
    out = tmp_path / "blip2"
    components = {"text": "blip2", "image": "blip2", "fusion": "additive", "decoder": "softmax"}
    result = mscmt(train_args(corpus, out, **components, batch_size=16, extra=["--model-path", f"blip2={blip2}"]))
    assert result.code == 0, result.err
    assert json.loads((out / "model" / "config.json").read_text())["image_dim"] == BLIP2_PROJECTION
