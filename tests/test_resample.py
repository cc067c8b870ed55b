"""The numpy resampler gives torch's uint8 antialiased resize, pixel for pixel (:mod:`mscmt_cli.model.resample`).

The oracle is torchvision's ``resize`` of a ``uint8`` tensor (what a Hugging Face image processor runs), on
images of any size from 1 pixel up, shrunk and enlarged, noise and smooth ramps, both filters (torch itself
fails an internal assertion when the image or the result is 1 pixel wide; those are left out).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mscmt_cli.model.resample import FILTERS, axis_taps, resize


def _torch_resize(image: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    import torch
    from torchvision.transforms.v2 import functional as tvF

    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    out = tvF.resize(tensor, [height, width], interpolation=tvF.InterpolationMode(mode), antialias=True)
    return out.permute(1, 2, 0).numpy()


def _image(seed: int, height: int, width: int, smooth: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if smooth:  # ramps: sums land near the rounding points more often than noise does
        steps = rng.integers(-3, 4, (height, width, 3))
        return np.clip(np.cumsum(steps, axis=1) + 128, 0, 255).astype(np.uint8)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    size=st.tuples(st.integers(1, 260), st.integers(1, 260)),
    out=st.tuples(st.integers(1, 240), st.integers(1, 240)),
    mode=st.sampled_from(sorted(FILTERS)),
    smooth=st.booleans(),
)
def test_the_resize_equals_torchs_on_any_size(seed, size, out, mode, smooth):
    image = _image(seed, *size, smooth)
    try:
        want = _torch_resize(image, *out, mode)
    except RuntimeError as err:  # "num_channels == unpacked_output.size(0) INTERNAL ASSERT FAILED" (width 1)
        assume("INTERNAL ASSERT" not in str(err))
        raise

    got = resize(image, *out, mode)

    assert got.dtype == np.uint8 and got.shape == (*out, 3)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("size", "out"), [((1200, 1600), (224, 298)), ((20, 30), (224, 336)), ((640, 480), (640, 224))])
def test_photo_sized_shrinks_enlargements_and_one_axis_resizes_equal_torchs(size, out):
    image = _image(7, *size, smooth=True)

    np.testing.assert_array_equal(resize(image, *out, "bicubic"), _torch_resize(image, *out, "bicubic"))


def test_an_unchanged_size_returns_the_pixels_and_an_unknown_filter_is_refused():
    image = _image(1, 9, 7, smooth=False)

    assert resize(image, 9, 7) is image
    with pytest.raises(ValueError, match=r"resampling 'lanczos' is not supported; use one of \['bicubic', 'bilinear'\]"):
        resize(image, 3, 3, "lanczos")


def test_the_weights_of_each_output_pixel_sum_to_one_at_their_precision():
    """Scaled weights sum to ``2**precision`` within rounding (one unit per tap), and the precision keeps the
    largest weight below ``2**15`` (int16)."""
    for in_size, out_size in ((1000, 224), (37, 224), (224, 224 - 1)):
        taps = axis_taps(in_size, out_size, "bicubic")
        sums = taps.weights.sum(axis=1)
        assert np.all(np.abs(sums - (1 << taps.precision)) <= taps.weights.shape[1])
        assert taps.weights.max() < 2**15 and taps.precision <= 22
        assert taps.starts.min() >= 0 and (taps.starts + (taps.weights != 0).sum(axis=1)).max() <= in_size


@settings(max_examples=200, deadline=None)
@given(in_size=st.integers(1, 5000), out_size=st.integers(1, 1000), mode=st.sampled_from(sorted(FILTERS)))
def test_the_sums_fit_in_int32_as_in_aten(in_size, out_size, mode):
    """The largest sum an output pixel can reach (255 on every positive weight, plus the rounding half) fits in int32."""
    taps = axis_taps(in_size, out_size, mode)
    positive = np.where(taps.weights > 0, taps.weights, 0).sum(axis=1).max()
    negative = np.where(taps.weights < 0, taps.weights, 0).sum(axis=1).min()
    assert 255 * int(positive) + (1 << (taps.precision - 1)) < 2**31
    assert 255 * int(negative) + (1 << (taps.precision - 1)) > -(2**31)
