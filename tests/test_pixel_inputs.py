"""A pixel encoder's preprocessing read as a recipe and redone in numpy, bit for bit (issue 25, item 3).

The oracles are the preprocessing the torch encoders run: Hugging Face's CLIP and BLIP image processors
(torchvision) and a timm model's eval transform, on images of any size and PIL mode. Processors with a step
the recipe does not redo are refused by name (:class:`~mscmt_cli.export.pixel_recipe.ImageStaysOnTorch`).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mscmt_cli.export.pixel_recipe import ImageStaysOnTorch, hf_recipe, timm_recipe
from mscmt_cli.model.pixel_inputs import PixelRecipe


def _processors() -> dict:
    from transformers import BlipImageProcessor, CLIPImageProcessor

    return {
        "clip": CLIPImageProcessor(),  # openai/clip-vit-large-patch14's: shortest edge 224, crop 224, bicubic
        "clip-small": CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        "blip": BlipImageProcessor(size={"height": 224, "width": 224}),
        "blip-bilinear": BlipImageProcessor(size={"height": 30, "width": 50}, resample=2),
    }


def _timm_transform():
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    return create_transform(**resolve_data_config({}, model=model), is_training=False)


PROCESSORS = _processors()
MODES = ["RGB", "L", "RGBA", "P", "LA"]


def _picture(seed: int, height: int, width: int, mode: str) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


pictures = st.builds(_picture, st.integers(0, 2**16), st.integers(1, 400), st.integers(1, 400), st.sampled_from(MODES))


@settings(max_examples=40, deadline=None)
@given(images=st.lists(pictures, min_size=1, max_size=3), name=st.sampled_from(sorted(PROCESSORS)))
def test_the_recipe_of_a_hugging_face_processor_gives_its_pixels_bit_for_bit(images, name):
    processor = PROCESSORS[name]
    recipe = hf_recipe(processor)

    got = np.concatenate(list(recipe.batches(images)))

    want = processor(images=images, return_tensors="pt")["pixel_values"].numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(images=st.lists(pictures, min_size=1, max_size=3))
def test_the_recipe_of_a_timm_transform_gives_its_pixels_bit_for_bit(images):
    import torch

    transform = _timm_transform()
    recipe = timm_recipe(transform)
    rgb = [image.convert("RGB") for image in images]  # the image store gives encoders RGB images

    got = np.concatenate(list(recipe.batches(rgb)))

    np.testing.assert_array_equal(got, torch.stack([transform(image) for image in rgb]).numpy())


def test_the_recipes_read_the_processors_settings():
    assert hf_recipe(PROCESSORS["clip"]) == PixelRecipe(
        family="hf",
        shortest_edge=224,
        resample="bicubic",
        crop=(224, 224),
        rescale=1 / 255,
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
    )
    timm = timm_recipe(_timm_transform())
    assert (timm.family, timm.shortest_edge, timm.crop, timm.resample, timm.mean) == ("timm", 168, (160, 160), "bilinear", (0.5,) * 3)
    assert PixelRecipe.model_validate_json(timm.model_dump_json()) == timm  # what config.json keeps


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"do_pad": True}, r"^CLIPImageProcessor: do_pad is not redone without torch$"),
        ({"do_convert_rgb": False}, r"^CLIPImageProcessor: do_convert_rgb false is not redone without torch$"),
        ({"resample": 0}, r"^CLIPImageProcessor: resampling 'nearest-exact' is not redone without torch \(bicubic, bilinear\)$"),
        ({"do_rescale": False, "do_normalize": False}, r"^CLIPImageProcessor neither rescales nor normalises \(uint8 pixels\)$"),
        ({"size": {"longest_edge": 300}}, r"^CLIPImageProcessor: size \{'longest_edge': 300\} is not redone without torch"),
    ],
)
def test_a_processor_with_a_step_the_recipe_does_not_redo_is_refused_by_name(settings_, message):
    from transformers import CLIPImageProcessor

    with pytest.raises(ImageStaysOnTorch, match=message):
        hf_recipe(CLIPImageProcessor(**settings_))


def test_a_processor_of_its_own_and_a_transform_of_other_steps_are_refused_by_name():
    from torchvision import transforms
    from transformers import CLIPImageProcessor

    class Mirrored(CLIPImageProcessor):
        def resize(self, image, size, resample=None, antialias=True, **kwargs):  # type: ignore[no-untyped-def]
            return super().resize(image.flip(-1), size, resample, antialias, **kwargs)

    with pytest.raises(ImageStaysOnTorch, match=r"^Mirrored has its own resize$"):
        hf_recipe(Mirrored())
    flipped = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    with pytest.raises(ImageStaysOnTorch, match=r"^timm transform RandomHorizontalFlip -> ToTensor is not redone without torch$"):
        timm_recipe(flipped)


def test_the_recipe_refuses_what_is_not_an_image():
    recipe = hf_recipe(PROCESSORS["clip-small"])

    with pytest.raises(Exception, match=r"a pixel image encoder encodes PIL images, got str"):
        list(recipe.batches(["a caption"]))
