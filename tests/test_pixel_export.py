"""A pixel image encoder exported as ``image.onnx`` and tagged without torch (issue 25, item 3).

CLIP (pooled and its patch tokens), BLIP-2 and timm models are exported with their vision graph; the
tagger of the export (``Tagger.from_pretrained(EXPORT, backend="onnx")``) in a fresh interpreter gives
the torch tagger's tags for tweets with images, probabilities within the suite's tolerance, and never
imports torch. Beneath it: the recipe's pixels equal the encoder's own preprocessing bit for bit
(:mod:`tests.test_pixel_inputs`), and :class:`~mscmt_cli.export.image_graph.OnnxImageEncoder` gives
the torch encoder's tokens under its own cache identity. An encoder whose preprocessing has no numpy
twin is kept on torch, and the export says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import needs
from tests.test_onnx_context import _save_run
from tests.test_onnx_without_torch import TEXTS, _tag_without_torch

pytestmark = needs("onnx", "onnxruntime")

#: The image of each tweet of TEXTS: sizes and shapes a processor resizes and crops differently.
IMAGE_SIZES = [(240, 320), (500, 90), (37, 41), (224, 224), (300, 280)]


def _images(root: Path) -> list[str]:
    """One PNG per tweet of TEXTS under ``root`` (noise over a gradient), as paths."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(IMAGE_SIZES):
        base = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None]
        pixels = np.clip(base + rng.integers(0, 56, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{i}.png")
        paths.append(str(root / f"{i}.png"))
    return paths


@pytest.fixture(scope="module")
def sources(tiny, tmp_path_factory) -> dict[str, str]:
    """``--model-path`` of each pixel encoder: the tiny CLIP, a tiny BLIP-2 and seeded test_resnet weights."""
    from tests.tiny_vlm import make_timm_weights, make_tiny_blip2

    root = tmp_path_factory.mktemp("pixel-sources")
    blip2 = str(make_tiny_blip2(root / "blip2"))
    timm = str(make_timm_weights(root / "timm.safetensors"))
    clip = str(tiny.clip_vision)
    return {
        "clip-vit-l14": clip,
        "clip-vit-l14-patches": clip,
        "blip2": blip2,
        "blip2-query-tokens": blip2,
        "timm:test_resnet": timm,
        "timm-grid:test_resnet": timm,
    }


#: Each pixel encoder with a fusion; timm-grid pools test_resnet's 5 x 5 map at 160 px to its default 7 x 7 grid,
#: which ONNX's own pooling could not export.
CASES = [
    ("clip-vit-l14", "gated"),
    ("clip-vit-l14-patches", "cross-attention"),
    ("blip2", "additive"),
    ("timm:test_resnet", "gated"),
    ("timm-grid:test_resnet", "cross-attention"),
]


@pytest.mark.parametrize(("image", "fusion"), CASES)
def test_a_pixel_model_is_tagged_from_its_export_without_importing_torch(image, fusion, mscmt, tiny, sources, tmp_path):
    """The export writes the vision graph as ``image.onnx`` with the preprocessing recipe; tagging tweets with
    images from it in a fresh interpreter gives the torch tagger's tags and never imports torch."""
    run = _save_run(tiny, tmp_path / "run", "none", image, fusion, sources=sources)
    export = tmp_path / "onnx"
    exported = mscmt(["export", run, "--out", export, "--model-path", f"{image}={sources[image]}"])
    assert exported.code == 0, exported.err
    assert f"; {image} as image.onnx, tokens within " in exported.err
    config = json.loads((export / "config.json").read_text())
    graph = config["tagging"]["image"]
    assert config["format_version"] == 4 and graph["input_kind"] == "pixels" and graph["pixels"]["resample"] in ("bicubic", "bilinear")
    assert graph["checked_max_abs_diff"] < 1e-4 and config["tagging"]["image_on_torch"] is None

    got, _ = _tag_without_torch(run, export, None, tmp_path, _images(tmp_path / "images"), {image: sources[image]})

    assert got["info"]["image_input"] == "pixels"


@pytest.mark.parametrize("image", ["clip-vit-l14-patches", "blip2-query-tokens", "timm-grid:test_resnet"])
def test_the_exported_pixel_encoder_gives_the_torch_encoders_tokens_under_its_own_identity(image, mscmt, tiny, sources, tmp_path):
    """``image.onnx`` run by :class:`OnnxImageEncoder` on PIL images gives the torch encoder's tokens (within
    1e-5) and masks, kept in the encoder's dtype, under an identity of its own."""
    from mscmt_cli.export.image_graph import OnnxImageEncoder
    from mscmt_cli.export.layout import read_export_config
    from mscmt_cli.features import encode_checked
    from mscmt_cli.model.build import saved_image_encoder
    from mscmt_cli.model.image_side import feature_identity
    from mscmt_cli.model.spec import read_spec
    from mscmt_cli.registry import Registry

    run = _save_run(tiny, tmp_path / "run", "none", image, "cross-attention", sources=sources)
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export, "--model-path", f"{image}={sources[image]}"]).code == 0
    graph = read_export_config(export).tagging.image  # type: ignore[union-attr]
    assert graph is not None and graph.pixels is not None
    onnx = OnnxImageEncoder(export, graph)
    torch_encoder = saved_image_encoder(read_spec(run / "model"), Registry.from_entry_points(), {image: sources[image]})
    pictures = [Image.open(path).convert("RGB") for path in _images(tmp_path / "images")]

    got, want = onnx.encode(pictures), torch_encoder.encode(pictures)

    np.testing.assert_array_equal(got.mask, want.mask.numpy())
    np.testing.assert_allclose(got.features, want.features.numpy(), atol=1e-5)
    for a, b in zip(encode_checked(onnx, pictures), encode_checked(torch_encoder, pictures)):
        assert a.dtype == b.dtype == np.dtype(graph.token_dtype)
    assert onnx.grid == torch_encoder.grid and onnx.token_texts(pictures[0]) is None
    assert feature_identity(onnx).startswith(graph.identity + "|onnx:") and feature_identity(onnx) != feature_identity(torch_encoder)


def test_an_encoder_without_a_numpy_twin_of_its_preprocessing_stays_on_torch_and_the_export_says_why(mscmt, tiny, sources, tmp_path):
    """A CLIP whose processor pads (a step the recipe does not redo) is exported without ``image.onnx``; the
    export's message and ``tagging.image_on_torch`` name the step, and the export still tags (with torch)."""
    import shutil

    from mscmt_cli import Tagger

    clip = tmp_path / "clip"
    shutil.copytree(sources["clip-vit-l14"], clip)
    processor = json.loads((clip / "preprocessor_config.json").read_text())
    (clip / "preprocessor_config.json").write_text(json.dumps(processor | {"do_pad": True}))
    run = _save_run(tiny, tmp_path / "run", "none", "clip-vit-l14", "gated", sources={"clip-vit-l14": str(clip)})
    export = tmp_path / "onnx"

    exported = mscmt(["export", run, "--out", export, "--model-path", f"clip-vit-l14={clip}"])

    assert exported.code == 0, exported.err
    assert "; image encoder kept on torch for tagging: CLIPImageProcessor: do_pad is not redone without torch" in exported.err
    config = json.loads((export / "config.json").read_text())
    assert config["tagging"]["image"] is None and "do_pad" in config["tagging"]["image_on_torch"]
    assert not (export / "image.onnx").exists()
    images = _images(tmp_path / "images")
    tagged = Tagger.from_pretrained(export, {"clip-vit-l14": str(clip)}, backend="onnx").tag_batch(TEXTS[:2], images[:2])
    want = Tagger.from_pretrained(run, {"clip-vit-l14": str(clip)}, backend="torch", device="cpu").tag_batch(TEXTS[:2], images[:2])
    assert [r.tags for r in tagged] == [r.tags for r in want]


def test_an_export_whose_pixel_encoder_records_no_recipe_is_refused_in_one_line(mscmt, tiny, sources, tmp_path):
    from mscmt_cli import Tagger
    from mscmt_cli.errors import ModelLoadError

    run = _save_run(tiny, tmp_path / "run", "none", "clip-vit-l14", "gated", sources=sources)
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export, "--model-path", f"clip-vit-l14={sources['clip-vit-l14']}"]).code == 0
    config = json.loads((export / "config.json").read_text())
    del config["tagging"]["image"]["pixels"]
    (export / "config.json").write_text(json.dumps(config))

    with pytest.raises(
        ModelLoadError, match=r"config.json: field tagging.image: Value error, a pixel image encoder records its pixels recipe$"
    ):
        Tagger.from_pretrained(export, backend="onnx")


def test_an_encoder_over_the_single_file_limit_keeps_its_weights_beside_the_graph(monkeypatch, mscmt, tiny, sources, tmp_path):
    """Over ``ONNX_MAX_BYTES`` (2 GiB; 0 here) the weights go to ``image.onnx.data`` beside the graph, recorded by
    their digest (part of the encoder's identity); the export tags without torch as the torch tagger does."""
    import hashlib

    from mscmt_cli.export import image_export
    from mscmt_cli.export.image_graph import OnnxImageEncoder
    from mscmt_cli.export.layout import read_export_config

    monkeypatch.setattr(image_export, "ONNX_MAX_BYTES", 0)
    run = _save_run(tiny, tmp_path / "run", "none", "clip-vit-l14", "gated", sources=sources)
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export, "--model-path", f"clip-vit-l14={sources['clip-vit-l14']}"]).code == 0
    graph = read_export_config(export).tagging.image  # type: ignore[union-attr]
    data = export / "image.onnx.data"

    assert graph is not None and graph.data_sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert (export / "image.onnx").stat().st_size < data.stat().st_size
    assert OnnxImageEncoder(export, graph).identity().endswith(f"|onnx:{graph.sha256[:12]}+{graph.data_sha256[:12]}")
    _tag_without_torch(run, export, None, tmp_path, _images(tmp_path / "images"), sources)


def test_the_exporters_per_tensor_weight_files_become_one_file_beside_the_graph(tmp_path):
    """What the ONNX exporter writes for a graph over 2 GiB (one file per tensor) is gathered into ``image.onnx.data``;
    the scattered files are removed and ONNX Runtime gives the same output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mscmt_cli.export.image_export import weights_beside
    from mscmt_cli.export.runtime import open_session

    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(8, 16)).astype(np.float32), rng.normal(size=(16, 4)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "image.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    assert len(list(tmp_path.iterdir())) == 3  # the graph and one file per weight
    x = rng.normal(size=(2, 8)).astype(np.float32)

    digest = weights_beside(path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.onnx", "image.onnx.data"] and len(digest) == 64
    np.testing.assert_allclose(open_session(path).run(["y"], {"x": x})[0], x @ w1 @ w2, rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 30), width=st.integers(1, 30), rows=st.integers(1, 12), cols=st.integers(1, 12))
def test_the_pooling_matrices_give_torchs_adaptive_average_pooling(height, width, rows, cols):
    """``P_h @ x @ P_w^T`` (what the export writes for ``adaptive_avg_pool2d``) equals torch's pooling, dividing or not."""
    import torch
    import torch.nn.functional as F

    from mscmt_cli.export.image_export import pooling_matrix

    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height * 31 + width))
    want = F.adaptive_avg_pool2d(x, (rows, cols)).numpy()

    got = pooling_matrix(height, rows) @ x.numpy() @ pooling_matrix(width, cols).T

    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_export_of_format_3_still_tags_with_torch_and_a_runs_own_is_made_again(tiny, sources, tmp_path):
    """Before format 4 a pixel encoder was not exported: such an export of the user's still tags (CLIP loaded with
    torch, the torch tagger's tags); a run's ``RUN/onnx`` of format 3 is exported again, now with ``image.onnx``."""
    import shutil

    from mscmt_cli import Tagger

    clip = {"clip-vit-l14": sources["clip-vit-l14"]}
    run = _save_run(tiny, tmp_path / "run", "none", "clip-vit-l14", "gated", sources=sources)
    Tagger.from_pretrained(run, clip, backend="onnx")  # makes RUN/onnx
    export = run / "onnx"
    config = json.loads((export / "config.json").read_text())
    config["format_version"], config["tagging"]["image"] = 3, None
    (export / "config.json").write_text(json.dumps(config))
    (export / "image.onnx").unlink()
    user = tmp_path / "user-export"
    shutil.copytree(export, user)
    images = _images(tmp_path / "images")

    old = Tagger.from_pretrained(user, clip, backend="onnx").tag_batch(TEXTS, images)

    want = Tagger.from_pretrained(run, clip, backend="torch", device="cpu").tag_batch(TEXTS, images)
    assert [r.tags for r in old] == [r.tags for r in want]
    again = Tagger.from_pretrained(run, clip, backend="onnx").tag_batch(TEXTS, images)
    assert json.loads((export / "config.json").read_text())["format_version"] == 4 and (export / "image.onnx").is_file()
    assert [r.tags for r in again] == [r.tags for r in want]
