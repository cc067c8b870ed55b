"""Reading a torch pixel encoder's preprocessing as a :class:`~mscmt_cli.model.pixel_inputs.PixelRecipe`.

Two kinds of preprocessing are read: a Hugging Face image processor on torchvision whose resizing,
cropping and normalising are the backend's own (CLIP's, BLIP's), from its ``to_dict()``; and a timm eval
transform made of torchvision's ``Resize``, ``CenterCrop``, ``ToTensor`` (or timm's ``MaybeToTensor``) and
``Normalize``. Anything else, or a recipe whose images differ in size, raises :class:`ImageStaysOnTorch` naming what
has no numpy twin; ``mscmt export`` then keeps the image encoder on torch and says why.
"""

from __future__ import annotations

from typing import Any

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.pixel_inputs import PIL_FILTERS, PixelRecipe
from mscmt_cli.model.resample import FILTERS

#: Hugging Face processor switches a recipe does not redo (all must be off).
HF_UNSUPPORTED = ("do_pad", "do_reduce_labels", "do_flip_channel_order")
#: The torchvision backend's methods a recipe redoes; a processor overriding one has its own rules.
HF_METHODS = ("_preprocess", "resize", "center_crop", "rescale_and_normalize", "process_image", "convert_to_rgb")


class ImageStaysOnTorch(MscmtError):
    """An image encoder ``mscmt export`` does not write as ``image.onnx`` (the message says why); the
    tagger loads it with torch."""


def pixel_recipe(encoder: Any) -> PixelRecipe:
    """The recipe of ``encoder``'s preprocessing: its Hugging Face ``processor`` or its timm ``transform``."""
    if getattr(encoder, "processor", None) is not None:
        recipe = hf_recipe(encoder.processor)
    elif getattr(encoder, "transform", None) is not None:
        recipe = timm_recipe(encoder.transform)
    else:
        raise ImageStaysOnTorch(f"{encoder.name} has neither an image processor nor a transform")
    if recipe.crop is None and recipe.size is None:
        raise ImageStaysOnTorch(f"{encoder.name}: its preprocessing gives images of different sizes (no crop, no fixed size)")
    return recipe


def hf_recipe(processor: Any) -> PixelRecipe:
    """The recipe of a Hugging Face image processor on torchvision (``ImageStaysOnTorch`` for any other)."""
    from transformers.image_processing_backends import TorchvisionBackend

    name = type(processor).__name__
    if not isinstance(processor, TorchvisionBackend):
        raise ImageStaysOnTorch(f"{name} is not a torchvision image processor")
    changed = [m for m in HF_METHODS if getattr(type(processor), m) is not getattr(TorchvisionBackend, m)]
    if changed:
        raise ImageStaysOnTorch(f"{name} has its own {', '.join(changed)}")
    config = processor.to_dict()
    on = [key for key in HF_UNSUPPORTED if config.get(key)]
    if on or not config.get("do_convert_rgb", False):
        raise ImageStaysOnTorch(f"{name}: {', '.join(on) or 'do_convert_rgb false'} is not redone without torch")
    shortest, size = _hf_size(name, config) if config.get("do_resize") else (None, None)
    resample = _hf_resample(name, config.get("resample"))
    crop = config.get("crop_size") if config.get("do_center_crop") else None
    normalise = bool(config.get("do_normalize"))
    rescale = float(config["rescale_factor"]) if config.get("do_rescale") else None
    if not normalise and rescale is None:
        raise ImageStaysOnTorch(f"{name} neither rescales nor normalises (uint8 pixels)")
    return PixelRecipe(
        family="hf",
        shortest_edge=shortest,
        size=size,
        resample=resample,
        crop=(int(crop["height"]), int(crop["width"])) if crop else None,
        rescale=rescale,
        mean=tuple(float(v) for v in config["image_mean"]) if normalise else None,
        std=tuple(float(v) for v in config["image_std"]) if normalise else None,
    )


def _hf_size(name: str, config: dict[str, Any]) -> tuple[int | None, tuple[int, int] | None]:
    size = {k: v for k, v in (config.get("size") or {}).items() if v is not None}
    if set(size) == {"shortest_edge"}:
        return int(size["shortest_edge"]), None
    if set(size) == {"height", "width"}:
        return None, (int(size["height"]), int(size["width"]))
    raise ImageStaysOnTorch(f"{name}: size {size} is not redone without torch (shortest_edge, or height and width)")


def _hf_resample(name: str, resample: Any) -> str:
    from transformers.image_utils import pil_torch_interpolation_mapping

    mode = pil_torch_interpolation_mapping.get(resample, resample)
    value = str(getattr(mode, "value", mode))
    if value not in FILTERS:
        raise ImageStaysOnTorch(f"{name}: resampling {value!r} is not redone without torch ({', '.join(sorted(FILTERS))})")
    return value


def timm_recipe(transform: Any) -> PixelRecipe:
    """The recipe of a timm eval transform (a torchvision ``Compose``; ``ImageStaysOnTorch`` for other steps)."""
    steps = list(getattr(transform, "transforms", [transform]))
    kinds = [type(step).__name__ for step in steps]
    if kinds not in (["Resize", "CenterCrop", "MaybeToTensor", "Normalize"], ["Resize", "CenterCrop", "ToTensor", "Normalize"]):
        raise ImageStaysOnTorch(f"timm transform {' -> '.join(kinds)} is not redone without torch")
    resize, crop, _, normalise = steps
    if resize.max_size is not None:
        raise ImageStaysOnTorch("timm transform: Resize with max_size is not redone without torch")
    mode = str(getattr(resize.interpolation, "value", resize.interpolation))
    if mode not in PIL_FILTERS:
        raise ImageStaysOnTorch(f"timm transform: resampling {mode!r} is not redone without torch")
    size = [resize.size] if isinstance(resize.size, int) else list(resize.size)
    return PixelRecipe(
        family="timm",
        shortest_edge=int(size[0]) if len(size) == 1 else None,
        size=(int(size[0]), int(size[1])) if len(size) == 2 else None,
        resample=mode,
        crop=(int(crop.size[0]), int(crop.size[1])),
        rescale=1 / 255,
        mean=tuple(float(v) for v in _floats(normalise.mean)),
        std=tuple(float(v) for v in _floats(normalise.std)),
    )


def _floats(values: Any) -> list[float]:
    """A tensor's or a sequence's values as Python floats."""
    return list(values.tolist()) if hasattr(values, "tolist") else [float(v) for v in values]
