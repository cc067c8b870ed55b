"""How a pixel image encoder turns images into its model's ``pixel_values``, in numpy, without torch.

A pixel encoder's exported graph (:class:`~mscmt_cli.export.image_graph.OnnxImageEncoder`) needs the
pixels the torch encoder's own preprocessing gives, to the last bit. :class:`PixelRecipe` records that
preprocessing (``config.json``'s ``tagging.image.pixels``) and :meth:`PixelRecipe.pixels` redoes it:

* ``family="hf"``: a Hugging Face image processor on torchvision (CLIP, BLIP-2): the image to RGB (any
  transparency over white), resized as a ``uint8`` tensor (:func:`~mscmt_cli.model.resample.resize`,
  ATen's arithmetic), center-cropped (offsets truncated), then ``(x - mean / rescale) / (std / rescale)``
  in float32 (the processor fuses rescaling into normalising).
* ``family="timm"``: a timm model's eval transform (torchvision on PIL): Pillow's resize, a center crop
  (offsets rounded), ``x / 255``, then ``(x - mean) / std`` in float32.

:func:`~mscmt_cli.export.image_export.pixel_recipe` reads a recipe off a torch encoder, and
``mscmt export`` checks the recipe's pixels equal the encoder's bit for bit before it writes the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydantic import BaseModel

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.resample import resize

Pixels = npt.NDArray[np.float32]

#: Pillow's resampling filters by torchvision's names (what a timm transform records).
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


class PixelRecipe(BaseModel, extra="forbid"):
    """A pixel encoder's preprocessing (see the module's docstring).

    ``shortest_edge``: resize so the shorter side has this many pixels (the longer side scaled and
    truncated), else ``size`` ``(height, width)``; None for both: no resize. ``resample``: the filter's
    torchvision name. ``crop``: the center crop ``(height, width)``, None: none. ``rescale``: the factor
    pixels are multiplied by before normalising (``hf``: ``rescale_factor``; ``timm``: ``1/255``, applied
    as a division by 255). ``mean``/``std``: per channel, None: not normalised (``hf`` only).
    """

    family: Literal["hf", "timm"]
    shortest_edge: int | None = None
    size: tuple[int, int] | None = None
    resample: str
    crop: tuple[int, int] | None = None
    rescale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    batch_size: int = 32

    def batches(self, images: Sequence[Any]) -> Iterator[Pixels]:
        """``pixel_values`` ``(n, 3, H, W)`` float32 per batch of at most ``batch_size`` PIL images."""
        bad = next((x for x in images if not isinstance(x, Image.Image)), None)
        if bad is not None:
            raise MscmtError(f"a pixel image encoder encodes PIL images, got {type(bad).__name__}")
        for start in range(0, len(images), self.batch_size):
            yield np.stack([self.pixels(image) for image in images[start : start + self.batch_size]])

    def pixels(self, image: Image.Image) -> Pixels:
        """One image's ``pixel_values`` ``(3, H, W)`` float32."""
        height, width = self.output_size(image.height, image.width)
        offset: Callable[[float], int]
        if self.family == "hf":  # a uint8 tensor through ATen's resize; the crop's offsets truncated
            array, offset = resize(_rgb(image), height, width, self.resample), int
        else:  # Pillow's resize; torchvision rounds the crop's offsets
            resized = np.asarray(image.resize((width, height), PIL_FILTERS[self.resample]), dtype=np.uint8)
            array, offset = (resized[:, :, None] if resized.ndim == 2 else resized), round
        return self._normalise(array if self.crop is None else _center_crop(array, self.crop, offset))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of that size is resized to (torchvision's and Hugging Face's rule)."""
        if self.size is not None:
            return self.size
        if self.shortest_edge is None:
            return height, width
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)
        return (new_long, self.shortest_edge) if width <= height else (self.shortest_edge, new_long)

    def _normalise(self, array: npt.NDArray[np.uint8]) -> Pixels:
        """``(H, W, C)`` uint8 to ``(C, H, W)`` float32, rescaled and normalised as the family does."""
        x = np.ascontiguousarray(array.transpose(2, 0, 1)).astype(np.float32)
        if self.family == "timm":
            x = x / np.float32(255)
        shape = (-1, 1, 1)
        if self.mean is None or self.std is None:
            return x * np.float32(self.rescale) if self.rescale is not None else x
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if self.family == "hf" and self.rescale is not None:
            factor = np.float32(1.0 / self.rescale)
            mean, std = mean * factor, std * factor
        return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


def _rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` uint8: any transparency composited over white, as Hugging Face's ``convert_to_rgb``."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _center_crop(array: npt.NDArray[np.uint8], crop: tuple[int, int], offset: Callable[[float], int]) -> npt.NDArray[np.uint8]:
    """The ``crop`` ``(height, width)`` middle of ``array`` ``(H, W, C)``, zero-padded first where it is smaller
    (half before, the rest after); ``offset`` turns the half difference into the first row or column."""
    (height, width), (want_h, want_w) = array.shape[:2], crop
    if want_h > height or want_w > width:
        pad_h, pad_w = max(want_h - height, 0), max(want_w - width, 0)
        array = np.pad(array, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
        height, width = array.shape[:2]
    top, left = offset((height - want_h) / 2.0), offset((width - want_w) / 2.0)
    return array[top : top + want_h, left : left + want_w]
