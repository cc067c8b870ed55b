"""Antialiased resizing of uint8 images in numpy, pixel for pixel what torch computes, without torch.

Hugging Face's image processors resize a ``uint8`` image with torchvision, which runs ATen's uint8
antialiased kernel on the CPU: per axis, each output pixel is a weighted sum of a window of input
pixels, with weights computed in double precision (Pillow's filters: Keys' cubic with ``a = -0.5``, or
the triangle), normalised over the window, then scaled to ``int16`` at the largest precision that
keeps them below ``2**15``; the sums are integers, rounded by adding half and shifting, and clipped to
``[0, 255]``. The horizontal pass runs first and its ``uint8`` result feeds the vertical one. This
module does the same arithmetic, in the same order where order matters (the weights' sums), so its
pixels equal torch's (``tests/test_resample.py`` compares them on random images of many sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: The filters, by torchvision's interpolation name: their support (taps at scale 1).
SUPPORT = {"bicubic": 4, "bilinear": 2}

Image = npt.NDArray[np.uint8]


def _bicubic(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Keys' cubic (``a = -0.5``, as Pillow and ATen's antialiased path), evaluated as ATen writes it."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _bilinear(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The triangle filter."""
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


FILTERS = {"bicubic": _bicubic, "bilinear": _bilinear}


@dataclass(frozen=True)
class AxisTaps:
    """How one axis is resampled: output pixel ``i`` sums input pixels ``starts[i] + k`` weighted by
    ``weights[i, k]`` (integers, zero past the window), then shifts right by ``precision``."""

    starts: npt.NDArray[np.int64]
    weights: npt.NDArray[np.int64]
    precision: int


def axis_taps(in_size: int, out_size: int, mode: str) -> AxisTaps:
    """The taps ATen uses to resize an axis of ``in_size`` pixels to ``out_size`` (antialiased,
    ``align_corners=False``, no explicit scale), for ``mode`` in :data:`FILTERS`."""
    scale = in_size / out_size
    support = SUPPORT[mode] * 0.5 * scale if scale >= 1.0 else SUPPORT[mode] * 0.5
    width = math.ceil(support) * 2 + 1
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (np.arange(out_size, dtype=np.float64) + 0.5)
    starts = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    sizes = np.clip(np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - starts, 0, width)
    weights = np.zeros((out_size, width), np.float64)
    total = np.zeros(out_size, np.float64)
    for k in range(width):  # left to right, as ATen sums them
        inside = k < sizes
        w = FILTERS[mode](((starts + k).astype(np.float64) - center + 0.5) * invscale)
        weights[:, k] = np.where(inside, w, 0.0)
        total = np.where(inside, total + w, total)
    weights = np.divide(weights, total[:, None], out=np.zeros_like(weights), where=total[:, None] != 0.0)
    precision = _precision(float(weights.max(initial=0.0)))
    scaled = weights * float(1 << precision)
    ints = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5)).astype(np.int64)
    return AxisTaps(starts, ints, precision)


def _precision(largest: float) -> int:
    """The most bits (at most 22) that keep the largest weight, scaled, below ``2**15``."""
    bits = 0
    while bits < 22 and int(0.5 + largest * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    return bits


def _resample_axis(image: Image, taps: AxisTaps, axis: int) -> Image:
    """``image`` ``(H, W, C)`` resampled along ``axis`` (1: columns, 0: rows) by ``taps``, as uint8.

    Sums are int32, as ATen's: 255 times the weights' absolute sum stays below ``2**31`` (the weights are
    below ``2**15`` and sum to ``2**precision``, their negative lobes little; ``tests/test_resample.py``)."""
    size = image.shape[axis]
    shape = image.shape[:axis] + (len(taps.starts),) + image.shape[axis + 1 :]
    acc = np.full(shape, 1 << (taps.precision - 1), np.int32)
    term = np.empty(shape, np.int32)
    along = [1, 1, 1]
    along[axis] = -1
    for k in range(taps.weights.shape[1]):
        weights = taps.weights[:, k].astype(np.int32)
        if not weights.any():
            continue
        index = np.minimum(taps.starts + k, size - 1)  # past the window the weight is 0
        np.multiply(np.take(image, index, axis=axis), weights.reshape(along), out=term)
        acc += term
    out: Image = np.clip(acc >> taps.precision, 0, 255).astype(np.uint8)
    return out


def resize(image: Image, height: int, width: int, mode: str = "bicubic") -> Image:
    """``image`` ``(H, W, C)`` uint8 resized to ``(height, width, C)``: columns first, then rows."""
    if mode not in FILTERS:
        raise ValueError(f"resampling {mode!r} is not supported; use one of {sorted(FILTERS)}")
    if image.shape[1] != width:
        image = _resample_axis(image, axis_taps(image.shape[1], width, mode), axis=1)
    if image.shape[0] != height:
        image = _resample_axis(image, axis_taps(image.shape[0], height, mode), axis=0)
    return image
